"""トークスクリプト: the talk script a manager writes in Markdown, shown beside the screen pop.

Files, not config keys, because a manager edits a script during the day and wants the next call to show it:
`talk_scripts/` next to the config file, looked up from the most to the least specific —
`<campaign>.<segment>.md`, `<campaign>.md`, `<segment>.md`, `default.md`. Rendered with markdown-it-py in its
CommonMark preset with raw HTML off, so a script cannot inject markup or script into the agent's page.
"""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def script_dir(config_source: str) -> Path:
    base = Path(config_source).parent if config_source and not config_source.startswith("<") else Path("config")
    return base / "talk_scripts"


def find_script(folder: Path, campaign: str, segment: str) -> Path | None:
    names = [f"{campaign}.{segment}.md" if campaign and segment else "", f"{campaign}.md" if campaign else "",
             f"{segment}.md" if segment else "", "default.md"]
    for name in names:
        if name and "/" not in name and (folder / name).is_file():
            return folder / name
    return None


def render_script(folder: Path, campaign: str, segment: str) -> str:
    """The script's HTML for a call of CAMPAIGN in SEGMENT, or "" when the centre wrote none."""
    path = find_script(folder, campaign, segment)
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"<p class=\"error\">{path.name}: {type(exc).__name__}</p>"
    return str(_md.render(text))
