"""The built-in data generator: shape, contract, dirt and the behaviour the models rely on."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from clv_platform.datagen import GeneratorConfig, generate, write_parquet
from clv_platform.ingest.spec import PRESETS
from clv_platform.schemas import behavioral_events_schema, customers_schema, transactions_schema

N = 2_000
END = pd.Timestamp(GeneratorConfig().end_date)
NON_PRODUCT = ["POST", "M", "BANK CHARGES", "D"]


@pytest.fixture(scope="module")
def data():
    return generate(N, seed=11)


@pytest.fixture(scope="module")
def loyal():
    """The same customers, (almost) without dropout."""
    return generate(N, seed=11, dropout_a=0.01, dropout_b=1_000)


def _purchases(tx: pd.DataFrame) -> pd.DataFrame:
    """Customer product lines of non-cancelled invoices."""
    return tx[~tx.InvoiceNo.str.startswith("C") & tx.CustomerID.notna() & ~tx.StockCode.isin(NON_PRODUCT)]


def _invoices_per_customer(data) -> pd.Series:
    counts = _purchases(data.transactions).groupby("CustomerID").InvoiceNo.nunique()
    return counts.reindex(data.customers.customer_id, fill_value=0)


def test_same_parameters_give_identical_frames(data):
    again = generate(N, seed=11)
    for name in ("transactions", "behavioral_events", "customers"):
        pd.testing.assert_frame_equal(getattr(data, name), getattr(again, name))
    other = generate(N, seed=12)
    assert not data.transactions.equals(other.transactions)


def test_tables_pass_the_row_rules_into_the_raw_contract(data):
    from datetime import date, datetime

    import numpy as np

    from clv_platform.ingest.readers import SourceFrame
    from clv_platform.ingest.spec import PiiSpec, RuleLimits, SourceSpec
    from clv_platform.ingest.validate import EVENTS, TRANSACTIONS, validate

    def load(table, contract, spec):
        frame = SourceFrame("generator", table, np.arange(1, len(table) + 1))
        return validate([frame], contract, spec, RuleLimits(), PiiSpec(), None, datetime(2030, 1, 1), date(2000, 1, 1))

    lines = load(data.transactions, TRANSACTIONS, SourceSpec(preset="online_retail"))
    transactions_schema.validate(lines.accepted, lazy=True)
    # Only the dirt the generator plants on purpose is quarantined: guest lines and exact repeats.
    guests = int(data.transactions["CustomerID"].isna().sum())
    repeats = int(data.transactions[data.transactions["CustomerID"].notna()].duplicated().sum())
    assert lines.by_rule == {"customer_id_present": guests, "duplicate_line": repeats}
    events = load(data.behavioral_events, EVENTS, SourceSpec())
    behavioral_events_schema.validate(events.accepted, lazy=True)
    assert events.quarantine.empty
    customers_schema.validate(data.customers, lazy=True)
    assert list(data.transactions.columns) == list(PRESETS["online_retail"].values())
    assert data.transactions.UnitPrice.equals(data.transactions.UnitPrice.round(2))


def test_transactions_are_sorted_by_date_then_invoice(data):
    tx = data.transactions
    keys = list(zip(tx.InvoiceDate, tx.InvoiceNo, strict=True))
    assert keys == sorted(keys)


def test_default_size_is_about_fifty_lines_per_customer():
    small = generate(1_000)
    assert len(small.customers) == 1_000
    assert 35 <= len(small.transactions) / 1_000 <= 65


def test_every_row_belongs_to_a_customer_and_lies_in_their_window(data):
    tx, ev, cu = data.transactions, data.behavioral_events, data.customers
    signup = cu.set_index("customer_id").signup_date
    assert (signup == signup.dt.normalize()).all()
    assert set(tx.CustomerID.dropna()) <= set(cu.customer_id)
    assert set(ev.customer_id) <= set(cu.customer_id)
    known = tx[tx.CustomerID.notna()]
    assert (known.InvoiceDate >= known.CustomerID.map(signup)).all()
    assert (ev.event_timestamp >= ev.customer_id.map(signup)).all()
    assert tx.InvoiceDate.max() <= END and ev.event_timestamp.max() <= END
    assert signup.max() < END
    # Cohorts span the whole window.
    assert signup.min() < END - pd.DateOffset(years=2, months=9)
    assert signup.max() > END - pd.DateOffset(months=3)


def test_negative_quantities_are_exactly_the_c_invoices(data):
    tx = data.transactions
    assert ((tx.Quantity < 0) == tx.InvoiceNo.str.startswith("C")).all()


def test_cancellations_reverse_an_earlier_purchase_of_the_same_customer(data):
    tx = data.transactions.reset_index(names="line")
    cancels = tx[tx.InvoiceNo.str.startswith("C") & (tx.StockCode != "D")]
    assert len(cancels) > 0 and cancels.CustomerID.notna().all()
    originals = tx[~tx.InvoiceNo.str.startswith("C")].assign(Quantity=lambda d: -d.Quantity)
    matched = cancels.merge(originals, on=["CustomerID", "StockCode", "Quantity", "UnitPrice"], suffixes=("", "_orig"))
    matched = matched[matched.InvoiceDate_orig < matched.InvoiceDate]
    assert set(matched.line) == set(cancels.line)


def _dirt_rates(data) -> dict[str, float]:
    tx = data.transactions
    is_c = tx.InvoiceNo.str.startswith("C")
    product = ~tx.StockCode.isin(NON_PRODUCT)
    purchase_invoices = tx[~is_c].InvoiceNo.nunique()
    customer_invoices = tx[~is_c & tx.CustomerID.notna()].InvoiceNo.nunique()
    non_product_invoices = tx[tx.StockCode.isin(NON_PRODUCT)].InvoiceNo.nunique()
    return {
        "cancellation_rate": tx[is_c & product].InvoiceNo.nunique() / customer_invoices,
        "zero_price_rate": (tx[product & ~is_c].UnitPrice == 0).mean(),
        "guest_line_rate": tx.CustomerID.isna().mean(),
        "duplicate_rate": tx.duplicated().mean(),
        "non_product_rate": non_product_invoices / purchase_invoices,
    }


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_dirt_appears_at_the_configured_rates(data, scale):
    defaults = GeneratorConfig()
    names = [
        "cancellation_rate",
        "zero_price_rate",
        "guest_line_rate",
        "duplicate_rate",
        "non_product_rate",
    ]
    wanted = {name: getattr(defaults, name) * scale for name in names}
    sample = data if scale == 1.0 else generate(N, seed=11, **wanted)
    measured = _dirt_rates(sample)
    for name in names:
        # Cancellations and discounts past the cutoff are dropped, so those run a little low.
        assert measured[name] == pytest.approx(wanted[name], rel=0.3), name


def test_zero_dirt_rates_give_clean_transactions():
    clean = generate(
        500,
        seed=3,
        cancellation_rate=0,
        zero_price_rate=0,
        guest_line_rate=0,
        duplicate_rate=0,
        non_product_rate=0,
    )
    tx = clean.transactions
    assert tx.CustomerID.notna().all()
    assert (tx.Quantity > 0).all() and (tx.UnitPrice > 0).all()
    assert not tx.duplicated().any()
    assert not tx.StockCode.isin(NON_PRODUCT).any()


def test_catalogue_has_a_few_hundred_priced_products_and_uk_leads(data):
    products = _purchases(data.transactions).drop_duplicates("StockCode")
    assert 200 <= len(products) <= 400
    assert products.Description.nunique() == len(products)
    countries = data.customers.country.value_counts(normalize=True)
    assert countries.index[0] == "United Kingdom" and countries.iloc[0] > 0.7
    assert 10 <= len(countries) <= 20
    assert data.customers.acquisition_channel.nunique() == 6


def test_purchase_rates_differ_widely_between_customers(data):
    tenured = data.customers.signup_date < END - pd.DateOffset(years=2)
    counts = _invoices_per_customer(data)[tenured.to_numpy()]
    # Gamma-distributed rates and Beta dropout give a long right tail of frequent buyers.
    assert counts.quantile(0.9) >= 3 * counts.median()
    assert counts.std() / counts.mean() > 1.0
    # The same mean rate for everybody, and no dropout: the spread all but vanishes.
    defaults = GeneratorConfig()
    mean_rate = defaults.rate_shape_r / defaults.rate_scale_alpha
    uniform = generate(
        N,
        seed=11,
        rate_shape_r=500,
        rate_scale_alpha=500 / mean_rate,
        dropout_a=0.01,
        dropout_b=1_000,
    )
    flat = _invoices_per_customer(uniform)[tenured.to_numpy()]
    assert flat.std() / flat.mean() < 0.5


def _share_lapsed(data) -> float:
    """Share of customers signed up over a year ago with no purchase in the last year."""
    cutoff = END - pd.DateOffset(years=1)
    tenured = data.customers[data.customers.signup_date < cutoff].customer_id
    purchases = _purchases(data.transactions)
    recent = purchases[purchases.InvoiceDate >= cutoff].CustomerID
    return 1 - tenured.isin(recent).mean()


def test_customers_drop_out(data, loyal):
    lapsed = _share_lapsed(data)
    assert 0.3 < lapsed < 0.7
    assert _share_lapsed(loyal) < lapsed - 0.2


def _nov_dec_lift(data) -> float:
    """Lines per day in November-December over lines per day overall."""
    days = _purchases(data.transactions).InvoiceDate.dt.normalize()
    per_day = days.value_counts().reindex(pd.date_range(days.min(), days.max()), fill_value=0)
    return per_day[per_day.index.month >= 11].mean() / per_day.mean()


def test_sales_peak_in_november_and_december(data):
    lift = _nov_dec_lift(data)
    assert lift > 1.3
    # Without seasonality only the growing customer base lifts the year-ends.
    assert _nov_dec_lift(generate(N, seed=11, seasonality_strength=0)) < lift - 0.2


def test_frequent_buyers_browse_more(data):
    events = data.behavioral_events.groupby("customer_id").size()
    events = events.reindex(data.customers.customer_id, fill_value=0)
    spearman = events.rank().corr(_invoices_per_customer(data).rank())
    assert spearman > 0.3
    assert set(data.behavioral_events.event_type) == {"page_view", "search", "add_to_cart"}


def _browsing_after_lapse(data) -> float:
    """For customers silent in the last year: events per day then, over events per day before."""
    customers = data.customers.set_index("customer_id")
    last = _purchases(data.transactions).groupby("CustomerID").InvoiceDate.max()
    cutoff = END - pd.DateOffset(years=1)
    tenured = customers.signup_date.reindex(last.index) < cutoff - pd.DateOffset(years=1)
    lapsed = last[(last < cutoff) & tenured]
    events = data.behavioral_events[data.behavioral_events.customer_id.isin(lapsed.index)]
    before = (events.event_timestamp <= events.customer_id.map(lapsed)).sum()
    days_before = (lapsed - customers.signup_date[lapsed.index]).dt.days.clip(lower=1).sum()
    last_year = (events.event_timestamp >= cutoff).sum()
    return (last_year / (365 * len(lapsed))) / (before / days_before)


def test_churned_customers_stop_browsing(data, loyal):
    # Silent customers are mostly churned ones, who stop browsing some weeks after their last
    # order; without dropout the silent ones are slow buyers who keep browsing.
    assert _browsing_after_lapse(data) < 0.1
    assert _browsing_after_lapse(loyal) > 2 * _browsing_after_lapse(data)


def test_drift_knobs_move_spend_and_frequency(data):
    def order_value(d) -> float:
        lines = _purchases(d.transactions)
        return float((lines.Quantity * lines.UnitPrice).groupby(lines.InvoiceNo).sum().mean())

    spend = generate(N, seed=11, spend_multiplier=1.5)
    assert order_value(spend) > 1.3 * order_value(data)
    # The same customers: drift changes behaviour, not who they are.
    pd.testing.assert_frame_equal(spend.customers, data.customers)
    busy = generate(N, seed=11, purchase_rate_multiplier=2.0)
    assert _invoices_per_customer(busy).mean() > 1.25 * _invoices_per_customer(data).mean()


def test_write_parquet_in_one_chunk_equals_generate(tmp_path):
    written = write_parquet(tmp_path, 300, chunk_customers=1_000, seed=5)
    expected = generate(300, seed=5)
    for name, path in written.paths.items():
        frame = pd.read_parquet(path)
        pd.testing.assert_frame_equal(frame, getattr(expected, name))
        assert written.rows[name] == len(frame)


def test_write_parquet_chunks_are_deterministic_with_unique_ids(tmp_path):
    first = write_parquet(tmp_path / "a", 1_000, chunk_customers=300, seed=5)
    second = write_parquet(tmp_path / "b", 1_000, chunk_customers=300, seed=5)
    for name in first.paths:
        assert first.paths[name].read_bytes() == second.paths[name].read_bytes()
    customers = pd.read_parquet(first.paths["customers"])
    assert len(customers) == 1_000 and customers.customer_id.is_unique
    assert pq.ParquetFile(first.paths["customers"]).num_row_groups == 4
    events = pd.read_parquet(first.paths["behavioral_events"])
    assert events.event_id.is_unique
    assert set(events.customer_id) <= set(customers.customer_id)
    tx = pd.read_parquet(first.paths["transactions"])
    # An invoice number names one order: one customer (or guest) at one time.
    per_invoice = tx.fillna({"CustomerID": "guest"}).groupby("InvoiceNo")
    assert (per_invoice.CustomerID.nunique() == 1).all()
    assert (per_invoice.InvoiceDate.nunique() == 1).all()
    # The first chunk is what generate() gives for its customers.
    pd.testing.assert_frame_equal(customers.iloc[:300], generate(300, seed=5).customers, check_index_type=False)


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError, match="cancellation_rate"):
        generate(10, cancellation_rate=1.5)
    with pytest.raises(ValueError, match="n_customers"):
        generate(0)
    with pytest.raises(TypeError):
        generate(10, no_such_knob=1)
