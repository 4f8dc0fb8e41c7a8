import pandas as pd

from clv_platform.ingest.cleaning import cleaning_summary, non_product_stock_codes


def test_counts_cancellations_and_non_product_lines_by_hand():
    lines = pd.DataFrame(
        {
            "invoice_no": ["1", "1", "C2", "3", "4"],
            "stock_code": ["A", "POST", "A", "gift_0001_10", None],
            "quantity": [2, 1, -1, 1, 3],
            "unit_price": [5.0, 18.0, 5.0, 10.0, 1.0],
        }
    )
    summary = cleaning_summary(lines, ["POST"]).set_index("rule")
    assert summary.loc["cancellations net against revenue", ["lines", "value"]].tolist() == [1, -5.0]
    # POST and the GIFT voucher; a missing stock code is a product line.
    assert summary.loc["non-product codes excluded from product revenue", ["lines", "value"]].tolist() == [2, 28.0]


def test_non_product_codes_come_from_the_dbt_project():
    assert {"POST", "BANK CHARGES", "AMAZONFEE", "M", "D"} <= set(non_product_stock_codes())
