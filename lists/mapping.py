"""Mapping files: how one source's export translates into the canonical tables.

A mapping is TOML so an operator can adapt to a renamed column without code; it is validated up front so
a typo fails with the mapping file and key named instead of halfway through a nightly build.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lists.errors import ListsError

# canonical table -> field -> type. Types: str, key (required str), date, int, float, bool, enum:a|b, list
SCHEMA: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "key", "name": "str", "name_kana": "str", "phone": "str", "phone2": "str",
        "email": "str", "prefecture": "str", "created_at": "date", "tel_ok": "bool", "withdrawn": "bool",
        "caution": "bool",
    },
    "orders": {
        "order_id": "key", "customer_id": "key", "ordered_at": "date", "shipped_at": "date",
        "status": "enum:shipped|cancelled|returned|pending", "channel": "str", "subscription_id": "str",
        "cycle_no": "int", "total": "float",
        "balance": "float",  # outstanding amount (yen): the unpaid segment (lists.unpaid); optional
        # join helpers when the export has no customer id (Shopify orders): not stored
        "customer_email": "str", "customer_phone": "str",
    },
    "order_lines": {"order_id": "key", "sku": "key", "quantity": "int", "unit_price": "float"},
    "subscriptions": {
        "subscription_id": "key", "customer_id": "key", "sku": "key", "quantity": "int",
        "status": "enum:active|paused|cancelled|completed", "started_at": "date", "interval_days": "int",
        "next_ship_date": "date", "change_deadline": "date", "shipments_count": "int", "cancelled_at": "date",
        "cancel_reason": "str",
    },
    "products": {
        "sku": "key", "name": "str", "days_per_unit": "float", "is_trial": "bool", "upgrade_sku": "str",
        "related_skus": "list", "price": "float", "unit_cost": "float",
    },
    "blocks": {
        "phone": "str", "customer_id": "str", "kind": "enum:dnc|refusal|no_consent", "product_scope": "str",
        "since": "date",
    },
}
# fields a rule cannot do without: their columns must be in the file. Any other mapped column may be absent
# (a shop disabled it in its export settings): its field is empty and summary.json notes it.
REQUIRED_FIELDS: dict[str, set[str]] = {
    "customers": {"customer_id", "phone"},
    "orders": {"order_id", "customer_id", "customer_email", "customer_phone", "ordered_at"},
    "order_lines": {"order_id", "sku"},
    "subscriptions": {"subscription_id", "customer_id", "sku", "status", "next_ship_date", "shipments_count"},
    "products": {"sku"},
    "blocks": {"kind"},
}
KEYS = {"customers": "customer_id", "orders": "order_id", "subscriptions": "subscription_id", "products": "sku"}
DEFAULTS: dict[str, dict[str, str]] = {
    "customers": {"tel_ok": "1", "withdrawn": "0", "caution": "0"},
    "orders": {"status": "shipped"},
    "order_lines": {"quantity": "1"},
    "subscriptions": {"quantity": "1", "shipments_count": "0"},
    "products": {"is_trial": "0"},
}
ENCODINGS = {"utf-8", "utf-8-sig", "cp932"}
BLOCK_KINDS = ("dnc", "refusal", "no_consent")
# how CRMs write a block's kind (compared case-insensitively); a mapping's [blocks.kinds] adds or overrides.
# A kind found in neither blocks as dnc, with a reject line (lists.ingest): an unknown word is never dropped.
DEFAULT_BLOCK_KINDS: dict[str, str] = {
    **{k: "dnc" for k in (
        "dnc", "do_not_call", "do-not-call", "do not call", "donotcall", "tel_ng", "telng", "ng", "電話ng",
        "電話不可", "架電不可", "架電ng", "架電禁止", "電話禁止", "発信禁止", "発信不可", "電話お断り", "dnc登録",
        "社内dnc", "着信拒否")},
    **{k: "refusal" for k in (
        "refusal", "refused", "拒否", "勧誘拒否", "再勧誘拒否", "再勧誘禁止", "営業拒否", "お断り", "断り")},
    **{k: "no_consent" for k in (
        "no_consent", "no consent", "no-consent", "同意なし", "同意無", "未同意", "不同意", "同意撤回", "opt_out",
        "opt-out", "optout", "オプトアウト")},
}


@dataclass(frozen=True)
class Source:
    """Where one canonical field comes from: one column, or several joined with `sep` (EC-CUBE TEL1-3)."""

    columns: tuple[str, ...]
    sep: str = ""


@dataclass(frozen=True)
class TableMapping:
    table: str
    glob: str
    encoding: str = "utf-8"
    delimiter: str = ","
    columns: dict[str, Source] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    if_nonempty: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    date_formats: tuple[str, ...] = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d")
    strip_prefixes: tuple[str, ...] = ("'",)
    forward_fill_by: str = ""
    distinct: bool = False  # several rows per key are line items of one record: keep the first silently
    era_dates: bool = False  # also read Japanese era dates (令和6年5月1日, R6.5.1, H31/4/30)
    # rows to keep: source column -> accepted values (EC-CUBE 明細区分: only 商品 lines are products)
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    optional: tuple[str, ...] = ()  # mapped fields whose column may be absent from the file (disabled export column)
    # field -> column -> {value: result}: a value in ANOTHER column decides (Shopify "Financial Status" refunded)
    if_value: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    # subscriptions: interval_days from a frequency and a unit column (Recharge: order_interval_frequency/unit)
    interval_from: tuple[str, str] = ("", "")

    def source_columns(self) -> list[str]:
        cols: list[str] = []
        for src in self.columns.values():
            cols.extend(c for c in src.columns if c not in cols)
        for rules in self.if_nonempty.values():
            cols.extend(c for c in rules if c not in cols)
        if self.forward_fill_by and self.forward_fill_by not in cols:
            cols.append(self.forward_fill_by)
        cols.extend(c for c in self.where if c not in cols)
        for by_col in self.if_value.values():
            cols.extend(c for c in by_col if c not in cols)
        cols.extend(c for c in self.interval_from if c and c not in cols)
        return cols

    def required_columns(self) -> set[str]:
        """Source columns that must be in the file: those of required fields, the fill key and row filters."""
        need = {c for f, src in self.columns.items() if f in REQUIRED_FIELDS.get(self.table, set())
                and f not in self.optional for c in src.columns}
        if self.forward_fill_by:
            need.add(self.forward_fill_by)
        return need | set(self.where)


@dataclass(frozen=True)
class HttpSource:
    url: str
    token_env: str = ""
    page_size: int = 500
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    items_key: str = "items"
    next_key: str = "next_cursor"
    max_retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 10.0
    resources: dict[str, str] = field(default_factory=dict)  # canonical table -> URL path


@dataclass(frozen=True)
class Mapping:
    name: str
    path: str
    tables: dict[str, TableMapping]
    http: HttpSource | None = None


def _err(path: Path, where: str, msg: str) -> ListsError:
    return ListsError(f"{path}: [{where}] {msg}")


def _str_map(path: Path, where: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _err(path, where, "expected a table of strings")
    return {str(k): str(v) for k, v in raw.items()}


def _source(path: Path, where: str, raw: Any) -> Source:
    if isinstance(raw, str):
        return Source((raw,))
    if isinstance(raw, list) and raw and all(isinstance(c, str) for c in raw):
        return Source(tuple(raw), " ")
    if isinstance(raw, dict) and isinstance(raw.get("columns"), list):
        extra = set(raw) - {"columns", "sep"}
        if extra:
            raise _err(path, where, f"unknown keys {sorted(extra)} (expected columns, sep)")
        return Source(tuple(str(c) for c in raw["columns"]), str(raw.get("sep", "")))
    raise _err(path, where, "expected a column name, a list of columns, or {columns = [...], sep = \"-\"}")


_TABLE_KEYS = {"glob", "encoding", "delimiter", "columns", "values", "if_nonempty", "constants", "defaults",
               "date_formats", "strip_prefixes", "forward_fill_by", "distinct", "era_dates", "where", "optional",
               "if_value", "interval_from", "kinds"}


def _kinds(path: Path, where: str, raw: Any) -> dict[str, str]:
    """[blocks.kinds] / [tables.blocks.kinds]: source word -> dnc | refusal | no_consent."""
    kinds = _str_map(path, where, raw)
    for word, kind in kinds.items():
        if kind not in BLOCK_KINDS:
            raise _err(path, f"{where}.{word}", f"{kind!r} is not a block kind (expected {', '.join(BLOCK_KINDS)})")
    return {k.strip().lower(): v for k, v in kinds.items()}


def _table(path: Path, name: str, raw: Any, extra_kinds: dict[str, str] | None = None) -> TableMapping:
    where = f"tables.{name}"
    if name not in SCHEMA:
        raise _err(path, where, f"unknown canonical table (expected one of {', '.join(SCHEMA)})")
    if not isinstance(raw, dict):
        raise _err(path, where, "expected a table")
    extra = set(raw) - _TABLE_KEYS
    if extra:
        raise _err(path, where, f"unknown keys {sorted(extra)}")
    if not isinstance(raw.get("glob"), str):
        raise _err(path, where, "glob is required (a file pattern relative to the input directory)")
    enc = str(raw.get("encoding", "utf-8")).lower().replace("_", "-")
    if enc in {"shift-jis", "shift_jis", "sjis"}:
        raise _err(path, where, f"encoding {enc!r}: use cp932 (Windows Shift-JIS), which also decodes ①, ㈱ and NEC extensions")
    if enc not in ENCODINGS:
        raise _err(path, where, f"encoding {enc!r} not supported (utf-8 or cp932)")
    fields = SCHEMA[name]
    columns: dict[str, Source] = {}
    for f, src in dict(raw.get("columns", {})).items():
        if f not in fields:
            raise _err(path, f"{where}.columns.{f}", f"not a canonical field of {name} (fields: {', '.join(fields)})")
        columns[f] = _source(path, f"{where}.columns.{f}", src)
    values = {f: _str_map(path, f"{where}.values.{f}", m) for f, m in dict(raw.get("values", {})).items()}
    if "kinds" in raw and name != "blocks":
        raise _err(path, f"{where}.kinds", "kinds belongs to [tables.blocks] (or a top-level [blocks.kinds])")
    if name == "blocks":
        values["kind"] = {**DEFAULT_BLOCK_KINDS, **(extra_kinds or {}),
                          **_kinds(path, f"{where}.kinds", raw.get("kinds", {})), **values.get("kind", {})}
    if_nonempty = {f: _str_map(path, f"{where}.if_nonempty.{f}", m) for f, m in dict(raw.get("if_nonempty", {})).items()}
    constants = _str_map(path, f"{where}.constants", raw.get("constants", {}))
    defaults = {**DEFAULTS.get(name, {}), **_str_map(path, f"{where}.defaults", raw.get("defaults", {}))}
    for section in (values, if_nonempty, constants):
        for f in section:
            if f not in fields:
                raise _err(path, where, f"{f!r} is not a canonical field of {name}")
    keep_where: dict[str, tuple[str, ...]] = {}
    for col, vals in dict(raw.get("where", {})).items():
        if isinstance(vals, str):
            vals = [vals]
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            raise _err(path, f"{where}.where.{col}", "expected a value or a list of values to keep")
        keep_where[str(col)] = tuple(vals)
    opt_raw = raw.get("optional", [])
    if not isinstance(opt_raw, list) or any(f not in columns for f in opt_raw):
        raise _err(path, f"{where}.optional", "expected a list of mapped fields whose columns may be absent")
    optional = tuple(str(f) for f in opt_raw)
    if_value: dict[str, dict[str, dict[str, str]]] = {}
    for f, by_col in dict(raw.get("if_value", {})).items():
        if f not in fields or not isinstance(by_col, dict):
            raise _err(path, f"{where}.if_value.{f}", "expected [if_value.<field>.\"<column>\"] value = result tables")
        if_value[f] = {str(c): _str_map(path, f"{where}.if_value.{f}.{c}", m) for c, m in by_col.items()}
    ivf = raw.get("interval_from", {})
    if ivf and (name != "subscriptions" or not isinstance(ivf, dict) or set(ivf) != {"frequency", "unit"}):
        raise _err(path, f"{where}.interval_from", "subscriptions only: {frequency = \"col\", unit = \"col\"}")
    interval_from = (str(ivf.get("frequency", "")), str(ivf.get("unit", ""))) if ivf else ("", "")
    provided = set(columns) | set(constants) | set(if_nonempty) | set(if_value)
    key = KEYS.get(name)
    if key and key not in provided:
        raise _err(path, where, f"the key field {key!r} must be mapped")
    if name == "orders" and not ({"customer_id", "customer_email", "customer_phone"} & provided):
        raise _err(path, where, "map customer_id, or customer_email / customer_phone to join on")
    return TableMapping(
        table=name, glob=raw["glob"], encoding=enc, delimiter=str(raw.get("delimiter", ",")), columns=columns,
        values=values, if_nonempty=if_nonempty, constants=constants, defaults=defaults,
        date_formats=tuple(raw.get("date_formats", TableMapping.date_formats)),
        strip_prefixes=tuple(raw.get("strip_prefixes", TableMapping.strip_prefixes)),
        forward_fill_by=str(raw.get("forward_fill_by", "")), distinct=bool(raw.get("distinct", False)),
        era_dates=bool(raw.get("era_dates", False)), where=keep_where, optional=optional, if_value=if_value,
        interval_from=interval_from,
    )


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; every problem names the file and the key."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ListsError(f"{p}: mapping file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ListsError(f"{p}: not valid TOML: {exc}") from None
    tables_raw = raw.get("tables")
    if not isinstance(tables_raw, dict) or "customers" not in tables_raw:
        raise ListsError(f"{p}: [tables.customers] is required")
    blocks_raw = raw.get("blocks", {})
    if not isinstance(blocks_raw, dict) or set(blocks_raw) - {"kinds"}:
        raise ListsError(f"{p}: [blocks] takes only a kinds table ([blocks.kinds] word = \"dnc\")")
    kinds = _kinds(p, "blocks.kinds", blocks_raw.get("kinds", {}))
    tables = {name: _table(p, name, t, kinds) for name, t in tables_raw.items()}
    http = None
    if "http" in raw:
        h: dict[str, Any] = dict(raw["http"])
        known = set(HttpSource.__dataclass_fields__)
        if set(h) - known or "url" not in h:
            raise _err(p, "http", f"url is required; known keys: {', '.join(sorted(known))}")
        try:
            http = HttpSource(
                url=str(h["url"]), token_env=str(h.get("token_env", "")), page_size=int(h.get("page_size", 500)),
                cursor_param=str(h.get("cursor_param", "cursor")), limit_param=str(h.get("limit_param", "limit")),
                items_key=str(h.get("items_key", "items")), next_key=str(h.get("next_key", "next_cursor")),
                max_retries=int(h.get("max_retries", 5)), backoff_s=float(h.get("backoff_s", 0.5)),
                timeout_s=float(h.get("timeout_s", 10.0)), resources=_str_map(p, "http.resources", h.get("resources", {})))
        except (TypeError, ValueError) as exc:
            raise _err(p, "http", str(exc)) from None
    return Mapping(name=str(raw.get("name", p.stem)), path=str(p), tables=tables, http=http)
