"""A realistic, seeded e-commerce data generator: transactions, web sessions and customers.

Transactions come out in the shape of the UCI Online Retail log (``InvoiceNo, StockCode, ...``)
with the dirt such logs have; web-session events and a customer table come with them. Purchasing
follows a BG/NBD-like process and spend a Gamma-Gamma-like one, so the BTYD models downstream have
the structure they assume, while seasonality, channels and countries make the features matter.

Everything is drawn in vectorised numpy per *chunk* of customers and assembled as pyarrow tables:
:func:`generate` is one chunk converted to pandas, :func:`write_parquet` streams many chunks to
Parquet. Each chunk has its own seed (``SeedSequence(seed, spawn_key=(1, chunk))``), so output is
byte-identical for the same parameters however it is consumed.

Time is handled in two coordinates. *Warped days* ``w`` run over ``[0, n_days)`` and make the
seasonal process homogeneous: the integrated seasonal intensity ``Λ(w)`` is linear inside each day,
so the fractional part of ``w`` is uniform. *Wall-clock days* map ``floor(w) + frac(w)`` through the
inverse hour-of-day CDF, a monotone map that keeps event order and gives the daily rhythm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clv_platform.ml.features import ACQUISITION_CHANNELS
from clv_platform.raw_tables import EVENT_TYPES

TABLES = ("transactions", "behavioral_events", "customers")

# First ids match the UCI log's ranges, so the data looks familiar in a query.
FIRST_CUSTOMER_ID = 12346
FIRST_INVOICE_NO = 536365

# (country, share of customers): UK-heavy like the UCI log.
COUNTRIES = (
    ("United Kingdom", 0.80),
    ("Germany", 0.04),
    ("France", 0.04),
    ("EIRE", 0.02),
    ("Spain", 0.015),
    ("Belgium", 0.012),
    ("Netherlands", 0.01),
    ("Switzerland", 0.01),
    ("Portugal", 0.009),
    ("Italy", 0.008),
    ("Australia", 0.007),
    ("Norway", 0.006),
    ("Channel Islands", 0.006),
    ("Finland", 0.005),
    ("Sweden", 0.005),
    ("Denmark", 0.004),
)
# Foreign customers order less often but in bigger baskets, as in the UCI log.
_FOREIGN_RATE, _FOREIGN_SPEND = 0.9, 1.2

# (channel, share of customers, purchase-rate multiplier, spend multiplier) for each channel the features
# one-hot encode, in their order: organic_search, paid_search, social, email, referral, direct.
CHANNELS = tuple(
    (name, *mix)
    for name, mix in zip(
        ACQUISITION_CHANNELS,
        ((0.30, 1.00, 1.00), (0.20, 0.90, 0.95), (0.15, 0.80, 0.90), (0.10, 1.25, 1.05), (0.10, 1.15, 1.10), (0.15, 1.05, 1.00)),
        strict=True,
    )
)

# (StockCode, Description, share among non-product lines), spelled as in the UCI log. Discounts
# ("D") are booked as their own "C" invoice with Quantity -1, so Quantity < 0 exactly on C invoices.
NON_PRODUCT_CODES = (
    ("POST", "POSTAGE", 0.60),
    ("M", "Manual", 0.20),
    ("BANK CHARGES", "Bank Charges", 0.05),
    ("D", "Discount", 0.15),
)
_DISCOUNT = 3  # index of "D" above

# Seasonal multipliers (mean-normalised over the window): a Q4 peak with November's Black Friday.
_MONTH_FACTOR = np.array([0.80, 0.80, 0.95, 0.90, 0.95, 0.90, 0.90, 0.90, 1.05, 1.10, 1.50, 1.30])
_WEEKDAY_FACTOR = np.array([1.05, 1.10, 1.10, 1.10, 0.95, 0.80, 0.90])  # Monday first
# Share of lines picked from the Christmas range, by month.
_XMAS_SHARE = np.array([0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.12, 0.25, 0.20])
# Event types after a session's first page view: (page_view, search, add_to_cart).
_BROWSE_EVENT_P = np.array([0.68, 0.23, 0.09])
_PURCHASE_EVENT_P = np.array([0.55, 0.20, 0.25])
# Sessions a day anyone alive opens, however rarely they buy.
_BASE_BROWSE_RATE = 0.005
_HOUR_WEIGHT = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.5, 4.0, 5.5, 6.5,
     7.0, 6.5, 6.0, 5.5, 5.0, 4.5, 4.5, 5.0, 5.0, 4.0, 2.5, 1.0]
)  # fmt: skip
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOUR_WEIGHT) / _HOUR_WEIGHT.sum()])

_COLOURS = ("RED", "PINK", "WHITE", "BLUE", "GREEN", "IVORY", "BLACK", "VINTAGE", "CREAM", "SILVER")
_PATTERNS = (
    "RETROSPOT", "POLKADOT", "HEART", "STAR", "FLORAL", "PAISLEY",
    "DOILY", "REGENCY", "SPOTTY", "STRIPE", "BIRD", "GINGHAM",
)  # fmt: skip
# (item, typical unit price in GBP, Christmas range).
_ITEMS = (
    ("T-LIGHT HOLDER", 2.5, False), ("LUNCH BAG", 1.65, False), ("JUMBO BAG", 2.1, False),
    ("MUG", 1.25, False), ("TEA CUP AND SAUCER", 2.95, False), ("CAKE STAND", 9.95, False),
    ("PAPER NAPKINS", 0.85, False), ("BUNTING", 4.95, False), ("LANTERN", 3.75, False),
    ("CUSHION COVER", 3.75, False), ("ALARM CLOCK", 3.75, False), ("PHOTO FRAME", 2.55, False),
    ("HOT WATER BOTTLE", 4.25, False), ("DOORMAT", 7.95, False), ("WATERING CAN", 2.95, False),
    ("CHILDRENS APRON", 1.95, False), ("SHOPPER BAG", 2.1, False), ("PARTY CUPS", 0.65, False),
    ("STORAGE TIN", 3.75, False), ("WALL SIGN", 2.1, False), ("NOTEBOOK", 1.65, False),
    ("GLASS JAR", 1.45, False), ("CHOPSTICKS", 0.85, False), ("BIRTHDAY CARD", 0.42, False),
    ("CHRISTMAS TREE DECORATION", 0.85, True), ("ADVENT CALENDAR", 2.95, True),
    ("CHRISTMAS CRACKERS", 4.95, True), ("CHRISTMAS STOCKING", 2.95, True),
    ("SNOWFLAKE BAUBLE", 0.65, True), ("CHRISTMAS GIFT WRAP", 0.42, True),
)  # fmt: skip
_PACK_SIZES = np.array([1, 2, 3, 4, 6, 12, 24])
_PACK_WEIGHT = np.array([0.35, 0.10, 0.05, 0.10, 0.15, 0.20, 0.05])
_MAX_PRODUCTS = len(_COLOURS) * len(_PATTERNS) * len(_ITEMS)

_COUNTRY_NAMES = pa.array([name for name, _ in COUNTRIES])
_CHANNEL_NAMES = pa.array([name for name, *_ in CHANNELS])
_EVENT_NAMES = pa.array(EVENT_TYPES)


@dataclass(frozen=True)
class GeneratorConfig:
    """Every knob of the generator; the defaults give realistic, UCI-like data.

    Rates are per day; purchase rates and dropout follow BG/NBD, order values Gamma-Gamma.

    Parameters
    ----------
    seed
        Root seed; the same config and size give byte-identical output.
    end_date
        The observation cutoff: every timestamp falls before ``end_date`` 00:00, so the last
        day with activity is the day before.
    years
        Length of the window that ends at ``end_date``; customers sign up throughout it.
    n_products
        Size of the product catalogue, 10 to 3,600.
    rate_shape_r, rate_scale_alpha
        Purchase rate ``lambda ~ Gamma(r, rate=alpha)`` in purchases per day (mean ``r / alpha``).
    dropout_a, dropout_b
        Dropout probability after each purchase ``p ~ Beta(a, b)``.
    spend_shape_p, spend_shape_q, spend_scale_gamma
        Order value ``~ Gamma(p, rate=nu)`` with ``nu ~ Gamma(q, rate=gamma)``, in GBP; a
        customer's mean order value ``p / nu`` is inverse-Gamma distributed.
    mean_lines_per_order
        Mean number of distinct products on an order; varies by customer.
    signup_growth
        Signups at the end of the window are ``1 + signup_growth`` times those at its start.
    seasonality_strength
        Scales the monthly, weekday and Christmas-range seasonality; 0 switches it off.
    spend_multiplier, purchase_rate_multiplier
        Drift knobs: scale every customer's order values or purchase rate.
    sessions_per_purchase
        Browsing sessions per expected purchase while a customer is active.
    browse_tail_days
        Mean days a churned customer keeps browsing after the last purchase.
    cancellation_rate
        Share of customer invoices (partly) cancelled by a later "C" invoice.
    zero_price_rate
        Share of product lines with ``UnitPrice`` 0.
    guest_line_rate
        Share of all lines on guest orders (``CustomerID`` None).
    duplicate_rate
        Share of lines written twice, exactly.
    non_product_rate
        Share of invoices carrying a non-product line (postage, manual, bank charges, discount).
    """

    seed: int = 42
    end_date: str = "2025-12-31"
    years: int = 3
    n_products: int = 400
    rate_shape_r: float = 0.9
    rate_scale_alpha: float = 55.0
    dropout_a: float = 1.0
    dropout_b: float = 7.0
    spend_shape_p: float = 6.0
    spend_shape_q: float = 3.5
    spend_scale_gamma: float = 90.0
    mean_lines_per_order: float = 10.5
    signup_growth: float = 0.5
    seasonality_strength: float = 1.0
    spend_multiplier: float = 1.0
    purchase_rate_multiplier: float = 1.0
    sessions_per_purchase: float = 2.0
    browse_tail_days: float = 30.0
    cancellation_rate: float = 0.03
    zero_price_rate: float = 0.002
    guest_line_rate: float = 0.03
    duplicate_rate: float = 0.005
    non_product_rate: float = 0.03

    def __post_init__(self) -> None:
        try:
            pd.Timestamp(self.end_date)
        except ValueError as error:
            raise ValueError(f"end_date {self.end_date!r} is not a date") from error
        if self.years < 1:
            raise ValueError(f"years must be at least 1, got {self.years}")
        if not 10 <= self.n_products <= _MAX_PRODUCTS:
            raise ValueError(f"n_products must be between 10 and {_MAX_PRODUCTS}, got {self.n_products}")
        positive = (
            "rate_shape_r",
            "rate_scale_alpha",
            "dropout_a",
            "dropout_b",
            "spend_shape_p",
            "spend_scale_gamma",
            "spend_multiplier",
            "purchase_rate_multiplier",
            "browse_tail_days",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        # q > 1 keeps the mean order value finite.
        if not self.spend_shape_q > 1:
            raise ValueError(f"spend_shape_q must be > 1, got {self.spend_shape_q}")
        if not self.mean_lines_per_order >= 1:
            raise ValueError(f"mean_lines_per_order must be >= 1, got {self.mean_lines_per_order}")
        for name in ("signup_growth", "seasonality_strength", "sessions_per_purchase"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        rates = (
            "cancellation_rate",
            "zero_price_rate",
            "guest_line_rate",
            "duplicate_rate",
            "non_product_rate",
        )
        for name in rates:
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class GeneratedData:
    """The three raw tables; ``transactions`` uses the UCI Online Retail column names."""

    transactions: pd.DataFrame
    behavioral_events: pd.DataFrame
    customers: pd.DataFrame


@dataclass(frozen=True)
class ParquetOutput:
    """What :func:`write_parquet` wrote: one file per table and its row count."""

    paths: dict[str, Path]
    rows: dict[str, int]


def generate(n_customers: int = 5_000, config: GeneratorConfig | None = None, **overrides: Any) -> GeneratedData:
    """Generate customers, their transactions and web sessions in memory.

    Parameters
    ----------
    n_customers
        Registered customers to simulate; guest orders come on top.
    config
        Base configuration (default :class:`GeneratorConfig`).
    **overrides
        :class:`GeneratorConfig` fields to change, e.g. ``seed=7`` or ``spend_multiplier=1.2``.

    Returns
    -------
    GeneratedData
        Identical for identical arguments, and equal to what :func:`write_parquet` writes with
        ``chunk_customers >= n_customers``.

    Examples
    --------
    >>> data = generate(200, seed=1)
    >>> list(data.transactions.columns)[:3]
    ['InvoiceNo', 'StockCode', 'Description']
    >>> drifted = generate(200, seed=1, spend_multiplier=1.3)
    """
    (tables,) = iter_tables(n_customers, chunk_customers=n_customers, config=config, **overrides)
    return GeneratedData(**{name: tables[name].to_pandas() for name in TABLES})


def iter_tables(
    n_customers: int,
    *,
    chunk_customers: int = 50_000,
    config: GeneratorConfig | None = None,
    **overrides: Any,
) -> Iterator[dict[str, pa.Table]]:
    """Yield the three tables, as pyarrow, for successive chunks of ``chunk_customers`` customers.

    Customer ids and invoice numbers are unique across chunks; guest orders are spread over the
    chunks in proportion to their customers. Each chunk's transactions and events are sorted by
    time; the concatenation of chunks is not.
    """
    cfg = dataclasses.replace(config or GeneratorConfig(), **overrides)
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if chunk_customers < 1:
        raise ValueError(f"chunk_customers must be at least 1, got {chunk_customers}")
    calendar = _Calendar.build(cfg)
    catalogue = _Catalogue.build(cfg)
    # Room for every chunk's invoices; overflow would need 50 invoices per customer on average.
    invoice_block = chunk_customers * 50 + 100_000
    for chunk, first in enumerate(range(0, n_customers, chunk_customers)):
        size = min(chunk_customers, n_customers - first)
        seeds = np.random.SeedSequence(cfg.seed, spawn_key=(1, chunk)).spawn(len(_Streams._fields))
        rngs = _Streams(*(np.random.default_rng(s) for s in seeds))
        yield _chunk_tables(
            cfg,
            calendar,
            catalogue,
            rngs,
            first,
            size,
            FIRST_INVOICE_NO + chunk * invoice_block,
            invoice_block,
        )


def write_parquet(
    out_dir: str | Path,
    n_customers: int = 1_000_000,
    *,
    chunk_customers: int = 50_000,
    config: GeneratorConfig | None = None,
    **overrides: Any,
) -> ParquetOutput:
    """Stream the three tables to ``out_dir/<table>.parquet``, one chunk of customers at a time.

    Memory stays bounded by one chunk (peak RSS about 1.6 GB at 50,000 customers), so a
    million customers and some fifty million transaction lines fit on a laptop. Each chunk becomes its own row
    group(s), appended in customer order.

    Returns
    -------
    ParquetOutput
        The file of each table and the rows written to it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.parquet" for name in TABLES}
    rows = dict.fromkeys(TABLES, 0)
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for tables in iter_tables(n_customers, chunk_customers=chunk_customers, config=config, **overrides):
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema, compression="zstd")
                writers[name].write_table(table, row_group_size=max(table.num_rows, 1))
                rows[name] += table.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return ParquetOutput(paths=paths, rows=rows)


class _Streams(NamedTuple):
    """One random stream per stage, so a knob of one stage leaves the others' draws unchanged."""

    customers: np.random.Generator
    purchases: np.random.Generator
    guests: np.random.Generator
    baskets: np.random.Generator
    dirt: np.random.Generator
    sessions: np.random.Generator


@dataclass(frozen=True)
class _Calendar:
    start: pd.Timestamp
    n_days: int
    cum: np.ndarray  # integrated seasonal intensity at each day boundary, Λ(0) = 0
    month: np.ndarray  # month of each day, 1-12
    signup_cdf: np.ndarray

    @classmethod
    def build(cls, cfg: GeneratorConfig) -> _Calendar:
        end = pd.Timestamp(cfg.end_date).normalize()
        start = end - pd.DateOffset(years=cfg.years)
        days = pd.date_range(start, end, freq="D", inclusive="left")
        s = cfg.seasonality_strength
        factor = (1 + s * (_MONTH_FACTOR[days.month - 1] - 1)) * (1 + s * (_WEEKDAY_FACTOR[days.weekday] - 1))
        # Floor keeps the intensity positive for strengths above 1.
        factor = np.maximum(factor, 0.05)
        factor /= factor.mean()
        growth = 1 + cfg.signup_growth * np.arange(len(days)) / len(days)
        signup = np.cumsum(factor * growth)
        return cls(
            start=start,
            n_days=len(days),
            cum=np.concatenate([[0.0], np.cumsum(factor)]),
            month=np.asarray(days.month),
            signup_cdf=signup / signup[-1],
        )

    def to_op(self, w: np.ndarray) -> np.ndarray:
        """Warped days to integrated seasonal intensity Λ(w)."""
        return np.interp(w, np.arange(self.n_days + 1), self.cum)

    def from_op(self, x: np.ndarray) -> np.ndarray:
        """Integrated seasonal intensity back to warped days, kept inside the window."""
        w = np.interp(x, self.cum, np.arange(self.n_days + 1))
        return np.minimum(w, np.nextafter(self.n_days, 0))

    def month_of(self, t: np.ndarray) -> np.ndarray:
        return self.month[np.minimum(t.astype(np.int64), self.n_days - 1)]

    def timestamps(self, t: np.ndarray, unit_seconds: int) -> np.ndarray:
        """Wall-clock days to ns timestamps, floored to ``unit_seconds`` so order is kept."""
        units = np.floor(t * (86_400 / unit_seconds)).astype(np.int64)
        return self.start.value + units * (unit_seconds * 1_000_000_000)


def _wall_clock(w: np.ndarray) -> np.ndarray:
    """Warped days to wall-clock days: the same day, hour of day from the daily rhythm."""
    day = np.floor(w)
    return day + np.interp(w - day, _HOUR_CDF, np.arange(25) / 24)


@dataclass(frozen=True)
class _Catalogue:
    stock_codes: pa.Array  # products, then the non-product codes
    descriptions: pa.Array
    prices: np.ndarray
    pack_sizes: np.ndarray
    regular: np.ndarray  # product indices of the regular range
    regular_cdf: np.ndarray  # cumulative popularity within it
    xmas: np.ndarray
    xmas_cdf: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.prices)

    @classmethod
    def build(cls, cfg: GeneratorConfig) -> _Catalogue:
        # Its own stream, shared by every chunk.
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(0,)))
        n = cfg.n_products
        combos = rng.choice(_MAX_PRODUCTS, size=n, replace=False)
        colour, rest = np.divmod(combos, len(_PATTERNS) * len(_ITEMS))
        pattern, item = np.divmod(rest, len(_ITEMS))
        descriptions = [f"{_COLOURS[c]} {_PATTERNS[p]} {_ITEMS[i][0]}" for c, p, i in zip(colour, pattern, item, strict=True)]
        base = np.array([_ITEMS[i][1] for i in item])
        # Prices cluster on 5p steps, like the UCI log's 0.85, 1.25, 2.95.
        prices = np.maximum(np.round(base * rng.lognormal(0, 0.35, n) * 20) / 20, 0.1)
        pack = np.where(prices < 4, rng.choice(_PACK_SIZES, n, p=_PACK_WEIGHT), 1)
        numbers = rng.choice(np.arange(10_000, 90_000), size=n, replace=False)
        suffix = np.where(rng.random(n) < 0.15, rng.choice(list("ABCDE"), n), "")
        codes = [f"{num}{suf}" for num, suf in zip(numbers, suffix, strict=True)]
        # Zipf-like popularity: a few best sellers, a long tail.
        popularity = 1 / (1 + rng.permutation(n)) ** 0.8
        is_xmas = np.array([_ITEMS[i][2] for i in item])
        pools = {}
        for name, mask in (("regular", ~is_xmas), ("xmas", is_xmas)):
            idx = np.flatnonzero(mask)
            cdf = np.cumsum(popularity[idx])
            pools[name] = idx
            pools[f"{name}_cdf"] = cdf / cdf[-1] if len(cdf) else cdf
        if not len(pools["xmas"]):  # tiny catalogues: Christmas lines fall back to regular ones
            pools["xmas"], pools["xmas_cdf"] = pools["regular"], pools["regular_cdf"]
        return cls(
            stock_codes=pa.array(codes + [code for code, _, _ in NON_PRODUCT_CODES]),
            descriptions=pa.array(descriptions + [d for _, d, _ in NON_PRODUCT_CODES]),
            prices=prices,
            pack_sizes=pack,
            **pools,
        )

    def draw(self, rng: np.random.Generator, xmas_share: np.ndarray) -> np.ndarray:
        """One product per line, from the Christmas range with probability ``xmas_share``."""
        u = rng.random((2, len(xmas_share)))
        is_xmas = u[0] < xmas_share
        product = self.regular[np.searchsorted(self.regular_cdf, u[1], side="right")]
        product[is_xmas] = self.xmas[np.searchsorted(self.xmas_cdf, u[1][is_xmas], side="right")]
        return product


def _owner(counts: np.ndarray) -> np.ndarray:
    """For counts per group, the group of each element."""
    return np.repeat(np.arange(len(counts)), counts)


def _rank(counts: np.ndarray) -> np.ndarray:
    """For counts per group, each element's 0-based position within its group."""
    starts = np.cumsum(counts) - counts
    return np.arange(counts.sum()) - np.repeat(starts, counts)


def _poisson_times(
    rng: np.random.Generator,
    calendar: _Calendar,
    w_from: np.ndarray,
    w_to: np.ndarray,
    rate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal Poisson processes, one per owner, of ``rate`` per day on ``[w_from, w_to)``.

    Returns each event's owner and warped time (unsorted).
    """
    op_from, op_to = calendar.to_op(w_from), calendar.to_op(w_to)
    counts = rng.poisson(rate * np.maximum(op_to - op_from, 0))
    owner = _owner(counts)
    op = op_from[owner] + rng.random(len(owner)) * (op_to - op_from)[owner]
    # Round trips through Λ can land a hair before w_from, i.e. on the previous day.
    return owner, np.maximum(calendar.from_op(op), w_from[owner])


@dataclass(frozen=True)
class _Customers:
    """Per-customer attributes and latent behaviour, one array element per customer."""

    country: np.ndarray
    channel: np.ndarray
    signup_day: np.ndarray
    rate: np.ndarray  # purchases per (seasonal) day while alive
    dropout: np.ndarray  # probability of leaving after each purchase
    mean_value: np.ndarray  # mean order value, GBP
    basket: np.ndarray  # mean lines per order
    browse_noise: np.ndarray  # browsing intensity beyond what the purchase rate explains
    w_first: np.ndarray  # first purchase, warped days


@dataclass(frozen=True)
class _Orders:
    """Invoices (customer orders first, then guest orders) and their lines."""

    owner: np.ndarray  # customer index, -1 for guests
    country: np.ndarray
    t: np.ndarray  # wall-clock days
    value: np.ndarray
    line_invoice: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_price: np.ndarray


def _chunk_tables(
    cfg: GeneratorConfig,
    calendar: _Calendar,
    catalogue: _Catalogue,
    rng: _Streams,
    first_customer: int,
    n: int,
    first_invoice: int,
    invoice_block: int,
) -> dict[str, pa.Table]:
    """All three tables for customers ``first_customer .. first_customer + n - 1``."""
    customers = _draw_customers(cfg, calendar, rng.customers, n)
    inv_customer, inv_w, last_w, churned = _draw_purchases(calendar, rng.purchases, customers)
    orders = _draw_orders(cfg, calendar, catalogue, rng, customers, inv_customer, inv_w)
    customer_ids = pc.cast(pa.array(first_customer + FIRST_CUSTOMER_ID + np.arange(n)), pa.string())
    transactions = _transactions_table(
        cfg,
        calendar,
        catalogue,
        rng.dirt,
        orders,
        n_customer_orders=len(inv_customer),
        customer_ids=customer_ids,
        first_invoice=first_invoice,
        invoice_block=invoice_block,
    )
    events = _events_table(
        cfg,
        calendar,
        rng.sessions,
        customers,
        customer_ids=customer_ids,
        order_customer=inv_customer,
        order_t=orders.t[: len(inv_customer)],
        last_w=last_w,
        churned=churned,
    )
    customer_table = pa.table(
        {
            "customer_id": customer_ids,
            "country": _COUNTRY_NAMES.take(customers.country),
            "acquisition_channel": _CHANNEL_NAMES.take(customers.channel),
            "signup_date": pa.array(calendar.timestamps(customers.signup_day.astype(float), 86_400), pa.timestamp("ns")),
        }
    )
    return {"transactions": transactions, "behavioral_events": events, "customers": customer_table}


def _draw_customers(cfg: GeneratorConfig, calendar: _Calendar, r: np.random.Generator, n: int) -> _Customers:
    country = r.choice(len(COUNTRIES), n, p=_shares(COUNTRIES))
    channel = r.choice(len(CHANNELS), n, p=_shares(CHANNELS))
    foreign = country != 0
    signup_day = np.searchsorted(calendar.signup_cdf, r.random(n), side="right")
    rate = (
        r.gamma(cfg.rate_shape_r, 1 / cfg.rate_scale_alpha, n)
        * _shares(CHANNELS, 2, normalise=False)[channel]
        * np.where(foreign, _FOREIGN_RATE, 1.0)
        * cfg.purchase_rate_multiplier
    )
    dropout = np.clip(r.beta(cfg.dropout_a, cfg.dropout_b, n), 1e-6, 1)
    # Gamma-Gamma: nu ~ Gamma(q, rate=gamma), so the mean order value p / nu is inverse-Gamma.
    mean_value = (
        cfg.spend_shape_p
        / r.gamma(cfg.spend_shape_q, 1 / cfg.spend_scale_gamma, n)
        * _shares(CHANNELS, 3, normalise=False)[channel]
        * np.where(foreign, _FOREIGN_SPEND, 1.0)
        * cfg.spend_multiplier
    )
    basket = 1 + r.gamma(2.0, (cfg.mean_lines_per_order - 1) / 2, n)
    browse_noise = r.gamma(4.0, 0.25, n)
    # Most buy on the day they sign up, the rest within a week (and before the cutoff).
    lag = np.where(r.random(n) < 0.7, 0, r.integers(1, 8, n))
    lag = np.where(signup_day + lag < calendar.n_days, lag, 0)
    return _Customers(
        country=country,
        channel=channel,
        signup_day=signup_day,
        rate=rate,
        dropout=dropout,
        mean_value=mean_value,
        basket=basket,
        browse_noise=browse_noise,
        w_first=signup_day + lag + r.random(n),
    )


def _draw_purchases(
    calendar: _Calendar, r: np.random.Generator, c: _Customers
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD in seasonal time: each customer's purchases until dropout or the cutoff.

    Returns the customer and warped time of every purchase (first purchases first), each
    customer's last purchase and whether they dropped out before the cutoff.
    """
    n = len(c.rate)
    op_first = calendar.to_op(c.w_first)
    window = calendar.cum[-1] - op_first
    arrivals = r.poisson(c.rate * window)  # purchases an immortal customer would make
    alive_for = r.geometric(c.dropout)  # purchases before dropping out, the first included
    repeats = np.minimum(arrivals, alive_for - 1)
    # Only the first `repeats` of `arrivals` uniform order statistics are drawn: with S_j the
    # cumulative sums of unit exponentials, U_(j) = S_j / S_(K+1) and S_(K+1) = S_m + Gamma(K+1-m).
    owner = _owner(repeats)
    s_j = np.cumsum(r.exponential(1.0, repeats.sum()))
    starts = np.cumsum(repeats) - repeats
    s_j -= np.where(starts > 0, s_j[np.maximum(starts - 1, 0)], 0.0)[owner]
    has = repeats > 0
    last = (starts + repeats - 1)[has]
    s_m = np.zeros(n)
    s_m[has] = s_j[last]
    total = s_m + r.gamma(arrivals - repeats + 1.0)
    w_repeat = calendar.from_op(op_first[owner] + s_j / total[owner] * window[owner])
    w_repeat = np.maximum(w_repeat, c.w_first[owner])  # against round-off in the round trip
    # Order statistics come sorted, so a customer's last purchase is the last repeat.
    last_w = c.w_first.copy()
    last_w[has] = w_repeat[last]
    return (
        np.concatenate([np.arange(n), owner]),
        np.concatenate([c.w_first, w_repeat]),
        last_w,
        repeats < arrivals,
    )


def _draw_orders(
    cfg: GeneratorConfig,
    calendar: _Calendar,
    catalogue: _Catalogue,
    rng: _Streams,
    c: _Customers,
    inv_customer: np.ndarray,
    inv_w: np.ndarray,
) -> _Orders:
    """Customer orders plus guest orders, with products, quantities and prices."""
    # Guests order like customers, as often as the configured share of lines needs.
    r = rng.guests
    n_cust_inv = len(inv_customer)
    n_guest = r.poisson(n_cust_inv * cfg.guest_line_rate / (1 - cfg.guest_line_rate))
    guest_w = calendar.from_op(r.random(n_guest) * calendar.cum[-1])
    guest_country = r.choice(len(COUNTRIES), n_guest, p=_shares(COUNTRIES))
    guest_mean = cfg.spend_shape_p / r.gamma(cfg.spend_shape_q, 1 / cfg.spend_scale_gamma, n_guest)
    guest_mean *= np.where(guest_country != 0, _FOREIGN_SPEND, 1.0) * cfg.spend_multiplier
    guest_basket = 1 + r.gamma(2.0, (cfg.mean_lines_per_order - 1) / 2, n_guest)

    r = rng.baskets
    t = _wall_clock(np.concatenate([inv_w, guest_w]))
    mean_value = np.concatenate([c.mean_value[inv_customer], guest_mean])
    value = r.gamma(cfg.spend_shape_p, 1 / cfg.spend_shape_p, len(t)) * mean_value
    n_lines = 1 + r.poisson(np.concatenate([c.basket[inv_customer], guest_basket]) - 1)
    line_inv = _owner(n_lines)
    xmas_share = _xmas_share(cfg.seasonality_strength)[calendar.month_of(t) - 1]
    product = catalogue.draw(r, xmas_share[line_inv])
    # An order lists a product once.
    _, keep = np.unique(line_inv * catalogue.n_products + product, return_index=True)
    keep.sort()
    line_inv, product = line_inv[keep], product[keep]
    # Split the order value over its lines (Dirichlet(1) shares), in whole packs where it fits.
    share = r.exponential(1.0, len(line_inv))
    share /= np.bincount(line_inv, weights=share, minlength=len(t))[line_inv]
    price = catalogue.prices[product]
    units = value[line_inv] * share / price
    pack = catalogue.pack_sizes[product]
    quantity = np.where(units >= pack, np.round(units / pack) * pack, np.maximum(np.round(units), 1))
    return _Orders(
        owner=np.concatenate([inv_customer, np.full(n_guest, -1)]),
        country=np.concatenate([c.country[inv_customer], guest_country]),
        t=t,
        value=value,
        line_invoice=line_inv,
        line_product=product,
        line_quantity=quantity.astype(np.int64),
        line_price=price,
    )


def _transactions_table(
    cfg: GeneratorConfig,
    calendar: _Calendar,
    catalogue: _Catalogue,
    r: np.random.Generator,
    o: _Orders,
    *,
    n_customer_orders: int,
    customer_ids: pa.Array,
    first_invoice: int,
    invoice_block: int,
) -> pa.Table:
    """The UCI-shaped log: the orders plus their dirt, numbered and sorted."""
    n_inv = len(o.t)
    line_inv, product, quantity = o.line_invoice, o.line_product, o.line_quantity
    price = np.where(r.random(len(line_inv)) < cfg.zero_price_rate, 0.0, o.line_price)
    # Non-product lines: postage, manual and bank charges join the invoice ...
    flagged = np.flatnonzero(r.random(n_inv) < cfg.non_product_rate)
    code = r.choice(len(NON_PRODUCT_CODES), len(flagged), p=_shares(NON_PRODUCT_CODES, 2))
    code_price = np.select(
        [code == 0, code == 1, code == 2],
        [
            np.where(r.random(len(flagged)) < 0.8, 18.0, 40.0),
            np.round(r.lognormal(np.log(3), 1.0, len(flagged)), 2),
            15.0,
        ],
        np.round(o.value[flagged] * r.uniform(0.03, 0.1, len(flagged)), 2),
    )
    code_qty = np.where(code == 0, 1 + r.poisson(0.3, len(flagged)), 1)
    on_invoice = code != _DISCOUNT
    # ... while cancellations (of customer orders) and discounts are later "C" invoices of the
    # same owner, dropped when they would fall after the cutoff.
    cancelled = np.flatnonzero(r.random(n_customer_orders) < cfg.cancellation_rate)
    c_source = np.concatenate([cancelled, flagged[~on_invoice]])
    c_discount = np.r_[np.zeros(len(cancelled)), code_price[~on_invoice]]
    is_discount = np.r_[np.zeros(len(cancelled), bool), np.ones((~on_invoice).sum(), bool)]
    c_t = o.t[c_source] + 10 / 1440 + r.exponential(3.0, len(c_source))
    inside = c_t < calendar.n_days
    c_source, c_discount, is_discount, c_t = (x[inside] for x in (c_source, c_discount, is_discount, c_t))
    c_inv = n_inv + np.arange(len(c_source))
    # A cancellation takes back a random half of the order's lines, at least one, in full.
    cancel_of = np.full(n_inv, -1)
    cancel_of[c_source[~is_discount]] = c_inv[~is_discount]
    pick = r.random(len(line_inv)) < 0.5
    first_line = np.r_[True, line_inv[1:] != line_inv[:-1]]
    pick |= first_line & (np.bincount(line_inv, weights=pick, minlength=n_inv) == 0)[line_inv]
    c_lines = np.flatnonzero(pick & (cancel_of[line_inv] >= 0))
    n_disc = int(is_discount.sum())
    n_products = catalogue.n_products
    l_inv = np.concatenate([line_inv, flagged[on_invoice], cancel_of[line_inv[c_lines]], c_inv[is_discount]])
    l_item = np.concatenate(
        [
            product,
            n_products + code[on_invoice],
            product[c_lines],
            np.full(n_disc, n_products + _DISCOUNT),
        ]
    )
    l_qty = np.concatenate([quantity, code_qty[on_invoice], -quantity[c_lines], np.full(n_disc, -1)])
    l_price = np.concatenate([price, code_price[on_invoice], price[c_lines], c_discount[is_discount]])
    # Exact duplicates, written next to their original.
    lines = np.repeat(np.arange(len(l_inv)), 1 + (r.random(len(l_inv)) < cfg.duplicate_rate))
    inv_owner = np.concatenate([o.owner, o.owner[c_source]])
    inv_country = np.concatenate([o.country, o.country[c_source]])
    inv_ts = calendar.timestamps(np.concatenate([o.t, c_t]), 60)
    is_c = np.r_[np.zeros(n_inv, bool), np.ones(len(c_source), bool)]

    # Invoice numbers follow time within the chunk, as in a real till.
    if len(inv_ts) > invoice_block:
        raise RuntimeError(f"{len(inv_ts)} invoices overflow the chunk's block of {invoice_block}")
    number = np.empty(len(inv_ts), np.int64)
    number[np.lexsort((is_c, inv_ts))] = first_invoice + np.arange(len(inv_ts))
    # Sort by (InvoiceDate, InvoiceNo as a string) in numpy, before any string exists: "C"
    # sorts after digits, and left-aligned digits put "999999" after "1000000".
    digits = np.searchsorted(10 ** np.arange(1, 19), number, side="right") + 1
    aligned = number * 10 ** (digits.max() - digits)
    rank = np.empty(len(inv_ts), np.int64)
    rank[np.lexsort((digits, aligned, is_c, inv_ts))] = np.arange(len(inv_ts))
    lines = lines[np.argsort(rank[l_inv[lines]], kind="stable")]  # stable: lines keep their order
    l_inv, l_item = l_inv[lines], l_item[lines]
    invoice_no = pc.cast(pa.array(number), pa.string())
    invoice_no = pc.if_else(pa.array(is_c), pc.binary_join_element_wise("C", invoice_no, ""), invoice_no)
    owner = inv_owner[l_inv]
    return pa.table(
        {
            "InvoiceNo": invoice_no.take(l_inv),
            "StockCode": catalogue.stock_codes.take(l_item),
            "Description": catalogue.descriptions.take(l_item),
            "Quantity": pa.array(l_qty[lines], pa.int64()),
            "InvoiceDate": pa.array(inv_ts[l_inv], pa.timestamp("ns")),
            "UnitPrice": pa.array(np.round(l_price[lines], 2), pa.float64()),
            "CustomerID": customer_ids.take(pa.array(owner, mask=owner < 0)),
            "Country": _COUNTRY_NAMES.take(inv_country[l_inv]),
        }
    )


def _events_table(
    cfg: GeneratorConfig,
    calendar: _Calendar,
    r: np.random.Generator,
    c: _Customers,
    *,
    customer_ids: pa.Array,
    order_customer: np.ndarray,
    order_t: np.ndarray,
    last_w: np.ndarray,
    churned: np.ndarray,
) -> pa.Table:
    """Web sessions: browsing in proportion to the purchase rate, and one per order."""
    n, n_days = len(c.rate), calendar.n_days
    # Browsing from signup while active, fading out weeks after a churned customer's last order.
    stop = np.where(churned, last_w + r.exponential(cfg.browse_tail_days, n), n_days)
    stop = np.minimum(stop, np.nextafter(n_days, 0))
    rate = c.rate * cfg.sessions_per_purchase * c.browse_noise + _BASE_BROWSE_RATE
    b_owner, b_w = _poisson_times(r, calendar, c.signup_day.astype(float), stop, rate)
    # An order's session starts shortly before it, on the same day.
    p_t = np.maximum(order_t - r.uniform(1, 20, len(order_t)) / 1440, np.floor(order_t))
    s_owner = np.concatenate([b_owner, order_customer])
    s_t = np.concatenate([_wall_clock(b_w), p_t])
    purchase = np.r_[np.zeros(len(b_w), bool), np.ones(len(order_t), bool)]
    n_s = len(s_t)
    # A session opens with a page view; one that ends in an order closes with add_to_cart.
    per_session = np.where(purchase, 2 + r.poisson(3.0, n_s), 1 + r.poisson(2.2, n_s))
    e_session = _owner(per_session)
    e_seq = _rank(per_session)
    is_first = e_seq == 0
    e_purchase = purchase[e_session]
    cut = np.cumsum(np.stack([_BROWSE_EVENT_P, _PURCHASE_EVENT_P]), axis=1)[e_purchase.astype(int)]
    u = r.random(len(e_session))
    e_type = (u >= cut[:, 0]).astype(np.int64) + (u >= cut[:, 1])
    e_type[is_first] = 0
    e_type[np.r_[e_session[1:] != e_session[:-1], True] & e_purchase] = 2
    step = r.exponential(45.0, len(e_session)) / 86_400  # seconds between clicks
    step[is_first] = 0.0
    elapsed = np.cumsum(step)
    # Offsets first: adding the chunk-long running sum to s_t would lose the seconds.
    e_t = s_t[e_session] + (elapsed - np.repeat(elapsed[is_first], per_session))
    # Sessions are numbered per customer by start time.
    s_seq = np.empty(n_s, np.int64)
    by_start = np.argsort(s_owner + s_t / (n_days + 1), kind="stable")
    s_seq[by_start] = _rank(np.bincount(s_owner, minlength=n))
    # Drop clicks past the cutoff, then order by time (ties in their deterministic build order).
    keep = np.flatnonzero(e_t < n_days)
    e_ts = calendar.timestamps(e_t[keep], 1)
    keep = keep[np.argsort(e_ts, kind="stable")]
    e_session = e_session[keep]
    session_id = pc.binary_join_element_wise(
        customer_ids.take(s_owner), pc.utf8_lpad(pc.cast(pa.array(s_seq), pa.string()), 4, "0"), "-"
    ).take(e_session)
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(session_id, pc.cast(pa.array(e_seq[keep]), pa.string()), "-"),
            "session_id": session_id,
            "customer_id": customer_ids.take(s_owner[e_session]),
            "event_type": _EVENT_NAMES.take(e_type[keep]),
            "event_timestamp": pa.array(calendar.timestamps(e_t[keep], 1), pa.timestamp("ns")),
        }
    )


def _shares(table: tuple, column: int = 1, *, normalise: bool = True) -> np.ndarray:
    """One numeric column of a lookup table above, normalised to probabilities by default."""
    values = np.array([row[column] for row in table], dtype=float)
    return values / values.sum() if normalise else values


def _xmas_share(strength: float) -> np.ndarray:
    base = _XMAS_SHARE.min()
    return np.clip(base + strength * (_XMAS_SHARE - base), 0, 1)
