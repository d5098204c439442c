"""scripts/build-pjsua2: the site build's limits, its cache key, and (on the site build) the installed wheel.

Building pjproject takes minutes, so these tests never build: the cache is seeded by hand to prove a rebuild
with the same source and settings reuses the wheel, and that any change of source or settings does not.
The installed wheel itself is checked in scripts/test's second pass, which runs on the site build.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-pjsua2"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("build_pjsua2", str(SCRIPT))
    spec = importlib.util.spec_from_loader("build_pjsua2", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+)$", text, re.M))


def _fake_source(path: Path, payload: bytes = b"not really pjproject\n") -> Path:
    """A tarball that looks like a source release but is not pjproject (no configure)."""
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pjproject-9.9/README")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    return path


def _run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TSUNAGU_CACHE=str(cache))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_config_site_raises_every_limit_the_dialer_needs() -> None:
    d = _defines(_load().config_site(512))
    assert d["PJSUA_MAX_CALLS"] == "512"
    assert d["PJSUA_MAX_PLAYERS"] == d["PJSUA_MAX_RECORDERS"] == "512"
    # one conference port per call, player and recorder, plus the bridge's own
    assert d["PJSUA_MAX_CONF_PORTS"] == "(PJSUA_MAX_CALLS + PJSUA_MAX_PLAYERS + PJSUA_MAX_RECORDERS + 8)"
    # RTP + RTCP per call, plus SIP transports: more than select()'s 1024
    assert int(d["PJ_IOQUEUE_MAX_HANDLES"]) >= 2 * 2 * 512
    assert d["PJMEDIA_HAS_VIDEO"] == d["PJSUA_HAS_VIDEO"] == "0"
    assert "--enable-epoll" in _load().CONFIGURE_ARGS and "--disable-sound" in _load().CONFIGURE_ARGS
    assert _defines(_load().config_site(300))["PJSUA_MAX_CALLS"] == "300"


def test_wheel_is_tagged_for_this_interpreter_and_platform() -> None:
    py, abi, plat = _load().wheel_tags()
    assert py == f"cp{sys.version_info.major}{sys.version_info.minor}" == abi
    assert plat.startswith("linux_") and "-" not in plat and "." not in plat


def test_same_source_and_settings_reuse_the_cached_wheel(tmp_path: Path) -> None:
    mod = _load()
    src = _fake_source(tmp_path / "src.tar.gz")
    mod.CACHE = tmp_path / "cache"
    slot, settings = mod.cache_slot(src, 512, mod.wheel_tags())
    assert settings["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    slot.mkdir(parents=True)
    cached = slot / "pjsua2_python-2.15.1.post1+site512.0-cp311-cp311-linux_x86_64.whl"
    cached.write_bytes(b"seeded")
    r = _run(str(src), "--no-install", "--print-wheel", cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(cached)  # nothing built: the source is not even buildable
    assert "cached wheel" in r.stderr and "building" not in r.stderr
    # another limit or another source is another key
    assert mod.cache_slot(src, 256, mod.wheel_tags())[0] != slot
    other = _fake_source(tmp_path / "other.tar.gz", b"something else\n")
    assert mod.cache_slot(other, 512, mod.wheel_tags())[0] != slot


def test_a_source_that_is_not_pjproject_is_refused_clearly(tmp_path: Path) -> None:
    src = _fake_source(tmp_path / "src.tar.gz")
    r = _run(str(src), "--no-install", cache=tmp_path / "cache")
    assert r.returncode == 1
    assert f"{src} is not a pjproject source tree" in r.stderr
    assert not list((tmp_path / "cache").rglob("*.whl"))
    r = _run(str(tmp_path / "missing.tar.gz"), "--no-install", cache=tmp_path / "cache")
    assert r.returncode == 1 and "does not exist" in r.stderr


def _site_version() -> str | None:
    try:
        v = importlib.metadata.version("pjsua2-python")
    except importlib.metadata.PackageNotFoundError:
        return None
    return v if "+site" in v else None


@pytest.mark.site_build
@pytest.mark.skipif(_site_version() is None, reason="pjsua2 here is the PyPI wheel (checked in the site pass)")
def test_installed_site_wheel_is_complete_and_holds_hundreds_of_calls(tmp_path: Path) -> None:
    dist = importlib.metadata.distribution("pjsua2-python")
    wheel_meta = dist.read_text("WHEEL") or ""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert re.search(rf"^Tag: {tag}-{tag}-linux_x86_64$", wheel_meta, re.M)
    assert "Root-Is-Purelib: false" in wheel_meta
    # every file the RECORD lists is there with the recorded hash (pip verified it too, at install)
    record = list(csv.reader(io.StringIO(dist.read_text("RECORD") or "")))
    checked = 0
    for name, digest, _size in record:
        if not digest or "__pycache__" in name or name.endswith(".dist-info/INSTALLER"):
            continue
        data = Path(str(dist.locate_file(name))).read_bytes()
        algo, want = digest.split("=", 1)
        got = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
        assert got == want, name
        checked += 1
    assert checked >= 5
    assert "GNU GENERAL PUBLIC LICENSE" in (dist.read_text("licenses/COPYING") or "")
    # pjsua grants what was asked up to its compile-time limit: ask for 400 in a fresh process
    probe = _load()._PROBE
    out = subprocess.run([sys.executable, "-c", probe, "400"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "400"
    assert "epoll I/O Queue created" in out.stdout  # pjlib's own start-up log: not select()
