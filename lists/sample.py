"""A realistic synthetic CRM export in the canonical format, any size (demo sample and 1M-row bench).

Japanese names and numbers, trial and subscription products, a cancel spike after the 3rd shipment
(the end of a typical minimum commitment) and a sprinkling of dirty rows, so the demo list has something
in every segment and the rejects file has something in it.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "佐々木",
            "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森", "池田", "橋本", "阿部", "石川")
GIVEN = ("陽子", "恵子", "京子", "幸子", "和子", "洋子", "美穂", "裕子", "直美", "真由美", "優子", "明美", "久美子",
         "花子", "一郎", "浩", "誠", "健一", "隆", "修", "大輔", "翔太", "さくら", "美咲", "結衣", "陽菜")
# readings for the screen pop (フリガナ): agents read a name aloud, so the sample carries kana like real CRMs do
KANA = {"佐藤": "サトウ", "鈴木": "スズキ", "高橋": "タカハシ", "田中": "タナカ", "伊藤": "イトウ", "渡辺": "ワタナベ",
        "山本": "ヤマモト", "中村": "ナカムラ", "小林": "コバヤシ", "加藤": "カトウ", "吉田": "ヨシダ", "山田": "ヤマダ",
        "佐々木": "ササキ", "山口": "ヤマグチ", "松本": "マツモト", "井上": "イノウエ", "木村": "キムラ", "林": "ハヤシ",
        "斎藤": "サイトウ", "清水": "シミズ", "山崎": "ヤマザキ", "森": "モリ", "池田": "イケダ", "橋本": "ハシモト",
        "阿部": "アベ", "石川": "イシカワ", "陽子": "ヨウコ", "恵子": "ケイコ", "京子": "キョウコ", "幸子": "サチコ",
        "和子": "カズコ", "洋子": "ヨウコ", "美穂": "ミホ", "裕子": "ユウコ", "直美": "ナオミ", "真由美": "マユミ",
        "優子": "ユウコ", "明美": "アケミ", "久美子": "クミコ", "花子": "ハナコ", "一郎": "イチロウ", "浩": "ヒロシ",
        "誠": "マコト", "健一": "ケンイチ", "隆": "タカシ", "修": "オサム", "大輔": "ダイスケ", "翔太": "ショウタ",
        "さくら": "サクラ", "美咲": "ミサキ", "結衣": "ユイ", "陽菜": "ヒナ"}
PREFS = ("東京都", "大阪府", "神奈川県", "愛知県", "埼玉県", "千葉県", "兵庫県", "北海道", "福岡県", "静岡県", "広島県",
         "京都府", "宮城県", "新潟県", "長野県", "沖縄県")
AREA = ("03", "06", "045", "052", "011", "092", "075", "022", "048", "043", "078", "082")

# sku, name, days_per_unit, is_trial, upgrade_sku, related_skus, price, unit_cost
PRODUCTS: tuple[tuple[str, str, float | None, int, str, str, int, int], ...] = (
    ("TRIAL-COLLA", "コラーゲンドリンク お試し7日分", 7, 1, "COLLA-30", "", 500, 300),
    ("COLLA-30", "コラーゲンドリンク 30日分", 30, 0, "", "BEAUTY-SERUM;HYAL-30", 3980, 1200),
    ("TRIAL-AOJIRU", "国産青汁 お試し10包", 10, 1, "AOJIRU-30", "", 980, 400),
    ("AOJIRU-30", "国産青汁 30包", 30, 0, "", "LACTO-30", 2980, 900),
    ("LACTO-30", "乳酸菌サプリ 60粒(30日分)", 30, 0, "", "AOJIRU-30", 2480, 700),
    ("HYAL-30", "ヒアルロン酸 30日分", 30, 0, "", "COLLA-30", 3480, 1000),
    ("TRIAL-SERUM", "美容液 トライアル 5ml", 14, 1, "BEAUTY-SERUM", "", 1000, 450),
    ("BEAUTY-SERUM", "美容液 30ml", 45, 0, "", "CLEANSE-120", 6800, 1800),
    ("CLEANSE-120", "クレンジング 120g", 60, 0, "", "BEAUTY-SERUM", 3200, 900),
    ("GLUCO-30", "グルコサミン 180粒", 30, 0, "", "LACTO-30", 3800, 1100),
)
SUB_SKUS = ("COLLA-30", "AOJIRU-30", "LACTO-30", "BEAUTY-SERUM", "GLUCO-30")
REGULAR = ("COLLA-30", "AOJIRU-30", "LACTO-30", "HYAL-30", "BEAUTY-SERUM", "CLEANSE-120", "GLUCO-30")
TRIALS = ("TRIAL-COLLA", "TRIAL-AOJIRU", "TRIAL-SERUM")
PRICE = {p[0]: p[6] for p in PRODUCTS}
DAYS = {p[0]: p[2] for p in PRODUCTS}
# cancel probability after the k-th shipment: the spike after the 3rd is the end of a 3-shipment commitment
HAZARD = {1: 0.10, 2: 0.08, 3: 0.38, 4: 0.07}
HAZARD_TAIL = 0.04


def _mobile(rng: random.Random) -> str:
    return f"{rng.choice(('090', '080', '070'))}-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"


_VALID: dict[str, bool] = {}


def _fixed(rng: random.Random) -> str:
    """A fixed-line number in an assigned range (checked once per exchange prefix, then cached)."""
    import phonenumbers

    for _ in range(20):
        area = rng.choice(AREA)
        if len(area) == 2:
            number = f"{area}-{rng.randint(2000, 9999)}-{rng.randint(0, 9999):04d}"
        else:
            number = f"{area}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        prefix = number[:8]
        ok = _VALID.get(prefix)
        if ok is None:
            num = phonenumbers.parse(number, "JP")
            ok = _VALID[prefix] = phonenumbers.is_valid_number(num)
        if ok:
            return number
    return f"03-{rng.randint(2000, 9999)}-{rng.randint(0, 9999):04d}"


def _styled(rng: random.Random, number: str, dirty: bool) -> str:
    """The same number the way people actually type it into a cart."""
    x = rng.random()
    if x < 0.55 or not dirty:
        return number
    if x < 0.75:
        return number.replace("-", "")
    if x < 0.82:
        return number.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    if x < 0.87:
        return "TEL:" + number
    if x < 0.91:
        return ("(携帯)" if number.startswith(("090", "080", "070")) else "(自宅)") + number
    if x < 0.95:
        return number.replace("-", "ー")
    return number.replace("-", " ")


def _garbage(rng: random.Random) -> str:
    return rng.choice(("なし", "000-0000-0000", "abc", "0120-123-456", "0570-064-555", "090-1234", "9012345678",
                       "020-4123-4567", "0800-111-2222"))


# the canonical export's header line per table (lists/README.md documents each column)
CANONICAL_HEADERS: dict[str, str] = {
    "customers": "customer_id,name,name_kana,phone,phone2,email,prefecture,created_at,tel_ok,withdrawn,caution",
    "orders": "order_id,customer_id,ordered_at,shipped_at,status,channel,subscription_id,cycle_no,total",
    "order_lines": "order_id,sku,quantity,unit_price",
    "subscriptions": "subscription_id,customer_id,sku,quantity,status,started_at,interval_days,next_ship_date,"
                     "change_deadline,shipments_count,cancelled_at,cancel_reason",
    "products": "sku,name,days_per_unit,is_trial,upgrade_sku,related_skus,price,unit_cost",
    "blocks": "phone,customer_id,kind,product_scope,since",
}


class _W:
    """Six CSV writers, one per canonical table."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.files = {}
        self.w: dict[str, Any] = {}
        for name, head in CANONICAL_HEADERS.items():
            fh = (out / f"{name}.csv").open("w", encoding="utf-8", newline="")
            self.files[name] = fh
            self.w[name] = csv.writer(fh)
            self.w[name].writerow(head.split(","))

    def row(self, table: str, values: list[Any]) -> None:
        self.w[table].writerow(values)

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def write_sample(out: str | Path, customers: int = 300, seed: int = 1, as_of: date | None = None,
                 dirty: bool = True, extra_orders: int = 0) -> dict[str, int]:
    """Write customers/orders/order_lines/subscriptions/products/blocks CSVs; returns rows per table.

    `extra_orders` adds up to 2x that many orders to each one-off buyer (the bench uses it to reach 5M orders).
    """
    rng = random.Random(seed)
    today = as_of or date.today()
    w = _W(Path(out))
    counts = dict.fromkeys(("customers", "orders", "order_lines", "subscriptions", "products", "blocks"), 0)
    for p in PRODUCTS:
        w.row("products", list(p))
        counts["products"] += 1
    order_no = 0
    sub_no = 0
    phones_seen: list[str] = []
    d = today.isoformat

    def order(cid: str, when: date, lines: list[tuple[str, int]], sub: str = "", cycle: int | str = "",
              status: str | None = None) -> None:
        nonlocal order_no
        order_no += 1
        oid = f"O{order_no:08d}"
        if status is None:
            x = rng.random()
            status = "shipped" if x < 0.93 else "cancelled" if x < 0.96 else "returned" if x < 0.98 else "pending"
        if when > today - timedelta(days=2):
            status = "pending"
        shipped = (when + timedelta(days=rng.randint(1, 3))).isoformat() if status in ("shipped", "returned") else ""
        total = sum(PRICE[s] * q for s, q in lines)
        ordered = when.isoformat()
        if dirty and rng.random() < 0.0015:
            ordered = rng.choice(("2024-13-45", "昨日", "31/02/2024"))
            shipped = ""
        w.row("orders", [oid, cid, ordered, shipped, status, "web" if not sub else "subscription", sub, cycle, total])
        counts["orders"] += 1
        for s, qn in lines:
            if dirty and rng.random() < 0.001:
                s = "ZZZ-999"
            if dirty and rng.random() < 0.001:
                qn = -qn
            w.row("order_lines", [oid, s, qn, PRICE.get(s, 0)])
            counts["order_lines"] += 1
        if dirty and rng.random() < 0.0005:
            w.row("orders", [oid, cid, when.isoformat(), "", "shipped", "web", "", "", total])  # duplicate id
            counts["orders"] += 1

    for i in range(1, customers + 1):
        cid = f"C{i:07d}"
        surname, given = rng.choice(SURNAMES), rng.choice(GIVEN)
        name, kana = f"{surname} {given}", f"{KANA[surname]} {KANA[given]}"
        number = _mobile(rng) if rng.random() < 0.72 else _fixed(rng)
        if phones_seen and rng.random() < 0.006:
            number = rng.choice(phones_seen[-50:])  # a family sharing the home number
        phones_seen.append(number)
        phone = _styled(rng, number, dirty)
        if dirty and rng.random() < 0.02:
            phone = _garbage(rng)
        phone2 = _styled(rng, _fixed(rng) if number.startswith("0" + "9") else _mobile(rng), dirty) \
            if rng.random() < 0.2 else ""
        created = today - timedelta(days=rng.randint(30, 2000))
        tel_ok = 0 if rng.random() < 0.02 else 1
        withdrawn = 1 if rng.random() < 0.01 else 0
        caution = 1 if rng.random() < 0.005 else 0
        row = [cid, name, kana, phone, phone2, f"c{i}@example.jp", rng.choice(PREFS), created.isoformat(),
               tel_ok, withdrawn, caution]
        w.row("customers", row)
        counts["customers"] += 1
        if dirty and rng.random() < 0.002:
            w.row("customers", row)  # the same customer exported twice
            counts["customers"] += 1
        if dirty and rng.random() < 0.001:
            w.row("customers", ["", name, "", phone, "", "", "", "", 1, 0, 0])
            counts["customers"] += 1
        kind = rng.random()
        if kind < 0.07:
            continue  # registered, never bought
        if kind < 0.40:
            # subscriber: monthly (or bi-monthly) shipments until cancelled or today
            sub_no += 1
            sid = f"S{sub_no:07d}"
            sku = rng.choice(SUB_SKUS)
            interval = 30 if rng.random() < 0.8 else 60
            # acquisition keeps going: a third of subscribers started in the last four months
            start = today - timedelta(days=rng.randint(5, 120) if rng.random() < 0.35 else rng.randint(121, 900))
            k, status, cancelled, next_ship = 0, "active", "", ""
            while True:
                ship = start + timedelta(days=k * interval)
                if ship > today:
                    next_ship = ship.isoformat()
                    break
                k += 1
                order(cid, ship, [(sku, 1)], sid, k, "shipped")
                if rng.random() < HAZARD.get(k, HAZARD_TAIL):
                    status, cancelled = "cancelled", (ship + timedelta(days=rng.randint(3, 20))).isoformat()
                    if cancelled > d():
                        cancelled = d()
                    break
            if status == "active" and rng.random() < 0.04:
                status = "paused"
            deadline = ""
            if next_ship:
                deadline = (date.fromisoformat(next_ship) - timedelta(days=7)).isoformat()
            w.row("subscriptions", [sid, cid, sku, 1, status, start.isoformat(), interval,
                                    next_ship if status in ("active", "paused") else "", deadline, k, cancelled,
                                    rng.choice(("飲み忘れ", "効果を感じない", "在庫が余っている", "価格")) if cancelled else ""])
            counts["subscriptions"] += 1
        elif kind < 0.70:
            # one-off buyer: a few orders spread over up to five years
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 6)) + (rng.randint(0, 2 * extra_orders) if extra_orders else 0)):
                when = today - timedelta(days=rng.randint(10, 1800))
                order(cid, when, [(rng.choice(REGULAR), rng.choice((1, 1, 2)))])
        else:
            # trial buyer, most of them recent enough for an upsell call
            when = today - timedelta(days=rng.randint(0, 30) if rng.random() < 0.7 else rng.randint(31, 400))
            order(cid, when, [(rng.choice(TRIALS), 1)], status="shipped")
            if rng.random() < 0.15:
                order(cid, when - timedelta(days=rng.randint(40, 200)), [(rng.choice(TRIALS), 1)], status="shipped")
        if rng.random() < 0.012:
            w.row("blocks", [number, "", "dnc", "", (today - timedelta(days=rng.randint(1, 900))).isoformat()])
            counts["blocks"] += 1
        elif rng.random() < 0.008:
            w.row("blocks", ["", cid, "refusal", rng.choice(("", "COLLA-30", "BEAUTY-SERUM", "AOJIRU-30")),
                             (today - timedelta(days=rng.randint(1, 900))).isoformat()])
            counts["blocks"] += 1
        elif rng.random() < 0.004:
            w.row("blocks", ["", cid, "no_consent", "", (today - timedelta(days=rng.randint(1, 900))).isoformat()])
            counts["blocks"] += 1
    w.close()
    return counts
