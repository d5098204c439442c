"""A stock EC-CUBE 4 export, written from its default dtb_csv column set (会員CSV type 2, 受注CSV type 3)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from tests.lists_util import AS_OF, PRODUCTS, REPO, build, listed, read_csv

ECCUBE4 = REPO / "config" / "mappings" / "eccube4.toml"
# default columns, in default order (EC-CUBE 4 dtb_csv fixtures)
MEMBER = ["会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名", "郵便番号", "都道府県(ID)",
          "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)", "性別(名称)", "職業(ID)", "職業(名称)",
          "誕生日", "初回購入日", "最終購入日", "購入回数", "ショップ用メモ欄", "会員ステータス(ID)", "会員ステータス(名称)",
          "登録日", "更新日"]
ORDER = ["注文ID", "注文番号", "会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名", "郵便番号",
         "都道府県(ID)", "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)", "性別(名称)", "職業(ID)",
         "職業(名称)", "誕生日", "ショップ用メモ欄", "小計", "値引き", "送料", "税金", "合計", "支払合計", "対応状況(ID)",
         "対応状況(名称)", "支払方法(ID)", "支払方法(名称)", "受注日", "入金日", "注文詳細ID", "商品ID", "商品規格ID",
         "商品名", "商品コード", "規格名1", "規格名2", "規格分類名1", "規格分類名2", "価格", "個数", "税率", "税率ルール(ID)",
         "明細区分(ID)", "明細区分(名称)", "出荷ID", "配送先_お名前(姓)", "配送先_お名前(名)", "配送先_お名前(セイ)",
         "配送先_お名前(メイ)", "配送先_会社名", "配送先_郵便番号", "配送先_都道府県(ID)", "配送先_都道府県(名称)",
         "配送先_住所1", "配送先_住所2", "配送先_TEL", "配送業者(ID)", "配送業者(名称)", "お届け時間ID", "お届け時間(名称)",
         "お届け希望日", "送料", "発送日", "出荷伝票番号", "配達用メモ", "出荷メール送信日"]


def _cp932_crlf(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    path.write_bytes(buf.getvalue().encode("cp932"))


def _member(cid: str, sei: str, mei: str, kana: tuple[str, str], tel: str, status: str = "本会員") -> dict[str, str]:
    return {"会員ID": cid, "お名前(姓)": sei, "お名前(名)": mei, "お名前(セイ)": kana[0], "お名前(メイ)": kana[1],
            "都道府県(ID)": "13", "都道府県(名称)": "東京都", "メールアドレス": f"m{cid}@example.jp", "TEL": tel,
            "会員ステータス(ID)": "2" if status == "本会員" else "3", "会員ステータス(名称)": status,
            "登録日": "2024-04-01 10:00:00", "更新日": "2026-11-01 10:00:00"}


def _items(no: str, cid: str, day: str, status: str, lines: list[tuple[str, str, str, int, int]]) -> list[dict[str, str]]:
    """lines: (明細区分, 商品コード, 商品名, 価格, 個数); the order's cells repeat on each item row."""
    total = sum(p * q for _, _, _, p, q in lines)
    return [{"注文ID": no, "注文番号": no, "会員ID": cid, "支払合計": str(total), "合計": str(total),
             "対応状況(ID)": "5", "対応状況(名称)": status, "受注日": f"{day} 09:30:00",
             "発送日": f"{day} 18:00:00" if status == "発送済み" else "", "商品コード": code, "商品名": name,
             "価格": str(price), "個数": str(qty), "明細区分(名称)": kind} for kind, code, name, price, qty in lines]


def test_stock_eccube4_export(tmp_path: Path) -> None:
    d = tmp_path / "ec4"
    d.mkdir()
    day = (AS_OF - timedelta(days=300)).isoformat()
    recent = (AS_OF - timedelta(days=3)).isoformat()
    _cp932_crlf(d / "customer_20261122103000.csv", MEMBER, [
        _member("1", "髙橋", "①子", ("タカハシ", "イチコ"), "090-1111-0001"),
        _member("2", "佐藤", "花子", ("サトウ", "ハナコ"), "08011110002"),
        _member("3", "鈴木", "退子", ("スズキ", "タイコ"), "090-1111-0003", status="退会"),
        _member("4", "田中", "取消", ("タナカ", "トリケシ"), "090-1111-0004"),
    ])
    _cp932_crlf(d / "order_20261122103000.csv", ORDER, [
        *_items("1001", "1", day, "発送済み", [("商品", "REG-A", "定番A", 3980, 1), ("送料", "", "送料", 500, 1),
                                             ("手数料", "", "代引手数料", 330, 1), ("割引", "", "値引き", -300, 1),
                                             ("ポイント", "", "ポイント", -100, 1), ("税", "", "消費税", 398, 1)]),
        *_items("1002", "2", recent, "発送済み", [("商品", "TRIAL-A", "お試し", 500, 1)]),
        *_items("1003", "3", day, "発送済み", [("商品", "REG-A", "定番A", 3980, 1)]),
        *_items("1004", "4", day, "注文取消し", [("商品", "REG-A", "定番A", 3980, 1)]),
        *_items("1005", "1", recent, "新規受付", [("商品", "REG-B", "定番B", 3480, 1)]),
    ])
    with (d / "products.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["sku", "name", "days_per_unit", "is_trial", "upgrade_sku", "related_skus",
                                           "price", "unit_cost"])
        w.writeheader()
        w.writerows(PRODUCTS)
    with build(d, tmp_path / "out", mapping=ECCUBE4) as r:
        got = listed(r)
        s = r.summary
        customers = {c[0]: c for b in r.table_rows("customers") for c in b}
        lines = [ln for b in r.table_rows("order_lines") for ln in b]
        orders = {o[0]: o for b in r.table_rows("orders") for o in b}
    assert customers["1"][1] == "髙橋 ①子" and customers["1"][2] == "タカハシ イチコ" and customers["1"][6] == "東京都"
    assert customers["3"][9] is True  # 退会 = withdrawn
    # only 商品 rows are products: the fee, discount, point and tax lines are not order lines
    assert sorted((ln[0], ln[1]) for ln in lines) == [("1001", "REG-A"), ("1002", "TRIAL-A"), ("1003", "REG-A"),
                                                      ("1004", "REG-A"), ("1005", "REG-B")]
    assert orders["1001"][8] == 3980 + 500 + 330 - 300 - 100 + 398  # 支払合計
    assert orders["1004"][4] == "cancelled" and orders["1005"][4] == "pending"
    assert ("1", "dormant") in got and got[("1", "dormant")].phones == ["+819011110001"]
    up = got[("2", "upsell")]
    assert (up.offer_sku, up.qualifying_sku, up.name) == ("REG-A", "TRIAL-A", "佐藤 花子")
    assert ("3", "dormant") not in got and s["suppressed"].get("withdrawn") == 1
    assert ("4", "dormant") not in got  # its only order was cancelled
    assert s["conservation"]["customers_ok"] and s["conservation"]["rows_ok"]
    assert [x for x in read_csv(tmp_path / "out" / "rejects.csv") if not x["reason"].startswith("warning")] == []
