"""Synthetic, realistic demo data for Tideline's landing zone, plus the ground truth behind it.

``generate_demo_data`` writes every landing-zone entity of ``tideline.landing.contract`` under
``out_dir`` (CSV for the CRM and the catalogue, month-partitioned Parquet for orders and order items,
month-partitioned JSON Lines for events) and the ground truth under ``out_dir / "_truth"``.

The data carries real signal for RFM, lifecycle, tags and churn/CLV models:

* signups grow over the window with a December peak and a Black Friday bump; ids are chronological;
* purchases follow a BG/NBD-like process per customer (Gamma purchase rates per persona, Beta dropout
  after each purchase, ~10% of dropped-out customers come back after more than 200 days), modulated by
  seasonality, weekday, hour of day and a Black Friday week (rate x3, coupons much more likely);
* spend is lognormal per customer (whales hold most revenue), order amounts Gamma around it;
* web/app sessions precede orders, browsing and cart-abandoning sessions happen without orders,
  anonymous sessions precede signups, second devices start with a login;
* ~3% duplicate accounts (same email in another case/spacing and/or same phone in another format) and
  ~0.5% malformed rows are planted and listed in ``_truth``;
* the last ``RECENT_DAYS`` days hold a sale (a sign-up drive and more carts left at checkout), so the
  demo journeys have something to start on: sign-ups (welcome series) and checkouts without an order
  (cart abandonment); their counts are in ``_truth/demo.json`` under ``recent``.

Customers are simulated in chunks of ``chunk_size`` with numpy, so memory stays bounded however many
customers are asked for. Everything that identifies a person (signup time, name, email, phone,
duplicates) is a pure hash of ``(seed, customer index)``; behaviour uses one
``numpy.random.Generator`` per chunk seeded with ``SeedSequence([seed, chunk_index])``. The same
arguments therefore give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tideline.landing.contract import (
    CONSENTS,
    CONTACTS,
    CUSTOMER_OWNERS,
    EVENTS,
    LEAD_STATUS,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    STAFF,
)

DEFAULT_END_DATE = dt.date(2026, 10, 31)
FUTURE_DAYS = 90
TRUTH_DIR = "_truth"
CURRENCY = "EUR"
SHOP_URL = "https://shop.example.com"

SECONDS_PER_DAY = 86_400
_INF = np.inf

# --------------------------------------------------------------------------------------------------
# Tunable shape parameters
# --------------------------------------------------------------------------------------------------
DUPLICATE_RATE = 0.03  # share of accounts that are a second account of an earlier customer
CONTACT_CORRUPT_RATE = 0.005  # contacts rows with a bad email or created_at (row stays usable)
CONTACT_MISSING_ID_RATE = 0.0015  # extra contacts rows without customer_id
ORDER_MALFORMED_RATE = 0.005  # extra, unusable order rows
ITEM_UNKNOWN_ORDER_RATE = 0.002  # extra order lines pointing at no order
CONSENT_MALFORMED_RATE = 0.003  # extra consent rows (unknown customer / bad timestamp)
REACTIVATION_PROBABILITY = 0.10
REACTIVATION_MIN_GAP_DAYS = 200.0
FIRST_PURCHASE_DELAY_DAYS = 20.0
IMMEDIATE_FIRST_ORDER = 0.45  # buyers whose account is created in the checkout of their first order
ORDER_EMAIL_SHARE = 0.30
BLACK_FRIDAY_RATE = 3.0
ANONYMOUS_VISITORS_PER_CUSTOMER = 0.35
# The last days of the window: a sale that the demo journeys start on (the loop's data ends
# yesterday, so a journey tick today sees them). Signups run at SIGNUP_DRIVE_RATE times the usual
# rate; every account still visiting starts RECENT_ABANDON_PER_YEAR more checkouts per year (in those
# days only) that it leaves without an order in the next 7 days.
RECENT_DAYS = 2
SIGNUP_DRIVE_RATE = 4.0
RECENT_ABANDON_PER_YEAR = 15.0

# persona: share, share among duplicate accounts, rate Gamma(shape, mean per year),
# dropout Beta(a, b), spend lognormal(median, sigma), coupon propensity Beta(a, b)
# fmt: off
PERSONAS: dict[str, dict[str, float]] = {
    "prospect": dict(share=0.25, dup_share=0.60, lam_shape=1.0, lam_mean=0.0, p_a=1, p_b=1,
                     spend=0.0, sigma=0.0, c_a=1, c_b=9),
    "one_timer": dict(share=0.22, dup_share=0.20, lam_shape=2.0, lam_mean=1.5, p_a=8, p_b=2,
                      spend=55.0, sigma=0.5, c_a=1, c_b=8),
    "regular": dict(share=0.30, dup_share=0.13, lam_shape=1.5, lam_mean=4.5, p_a=2, p_b=10,
                    spend=70.0, sigma=0.6, c_a=1, c_b=9),
    "loyal": dict(share=0.10, dup_share=0.02, lam_shape=3.0, lam_mean=9.0, p_a=1, p_b=25,
                  spend=85.0, sigma=0.6, c_a=1, c_b=9),
    "whale": dict(share=0.03, dup_share=0.0, lam_shape=2.0, lam_mean=8.0, p_a=1, p_b=20,
                  spend=450.0, sigma=0.5, c_a=1, c_b=12),
    "bargain_hunter": dict(share=0.10, dup_share=0.05, lam_shape=1.5, lam_mean=4.0, p_a=2, p_b=8,
                           spend=40.0, sigma=0.4, c_a=6, c_b=3),
}
# fmt: on
PERSONA_NAMES = tuple(PERSONAS)
PROSPECT = 0
MAX_RATE_PER_YEAR = 60.0

# acquisition sources; the first four create the account online and emit a `signup` event
SOURCES = ("web_signup", "checkout", "app", "newsletter", "store", "partner")
SIGNUP_SOURCES = np.array([True, True, True, True, False, False])
NON_CHECKOUT_SOURCE_P = np.array([0.45, 0.0, 0.20, 0.15, 0.12, 0.08])
CHANNELS = ("web", "app", "store")

# fmt: off
HOUR_PROFILE = np.array([0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.25, 0.45, 0.65, 0.80, 0.90, 1.00,
                         1.10, 1.05, 1.00, 1.00, 1.05, 1.15, 1.30, 1.45, 1.50, 1.30, 0.90, 0.50])
# fmt: on
WEEKDAY_PROFILE = np.array([1.00, 0.95, 0.95, 1.00, 1.05, 1.10, 1.10])  # Monday .. Sunday

BAD_TIMESTAMPS = (
    "2025-13-45",
    "yesterday",
    "31/02/2025 25:61",
    "2025-02-30T10:00:00Z",
    "not a date",
    "0000-00-00 00:00:00",
)
NON_NUMERIC_AMOUNTS = ("12,5", "abc", "EUR 12.50", "1.234,56", "n/a")

# --------------------------------------------------------------------------------------------------
# Reference data: countries, cities, names, catalogue
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _City:
    name: str
    timezone: str
    areas: tuple[str, ...]  # dialled area codes (national significant number prefixes)
    rest_digits: int = 0  # digits between the area code and the 7-digit subscriber number


@dataclass(frozen=True)
class _Country:
    code: str
    weight: float
    calling_code: str
    trunk_zero: bool
    cities: tuple[_City, ...]
    city_weights: tuple[float, ...]
    mobile_areas: tuple[str, ...]
    mobile_rest_digits: int
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    domains: tuple[str, ...]


def _cities(*rows: tuple[str, str, str, int]) -> tuple[_City, ...]:
    return tuple(_City(name, tz, tuple(areas.split()), rest) for name, tz, areas, rest in rows)


# fmt: off
COUNTRIES: tuple[_Country, ...] = (
    _Country("US", 0.30, "1", False,
             _cities(("New York", "America/New_York", "212 646 917", 0),
                     ("Los Angeles", "America/Los_Angeles", "213 310 323", 0),
                     ("Chicago", "America/Chicago", "312 773", 0),
                     ("San Francisco", "America/Los_Angeles", "415 628", 0),
                     ("Seattle", "America/Los_Angeles", "206", 0),
                     ("Austin", "America/Chicago", "512 737", 0),
                     ("Boston", "America/New_York", "617 857", 0),
                     ("Denver", "America/Denver", "303 720", 0),
                     ("Miami", "America/New_York", "305 786", 0)),
             (0.22, 0.16, 0.12, 0.09, 0.08, 0.08, 0.09, 0.08, 0.08), ("332", "646", "917", "415"), 0,
             ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
              "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
              "Christopher", "Karen", "Daniel", "Emily", "Matthew", "Ashley", "Anthony", "Megan"),
             ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
              "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
              "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "O'Brien", "Nguyen"),
             ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "aol.com")),
    _Country("GB", 0.15, "44", True,
             _cities(("London", "Europe/London", "20", 1),
                     ("Manchester", "Europe/London", "161", 0),
                     ("Birmingham", "Europe/London", "121", 0),
                     ("Edinburgh", "Europe/London", "131", 0),
                     ("Bristol", "Europe/London", "117", 0)),
             (0.45, 0.17, 0.15, 0.12, 0.11), ("740", "751", "777", "795", "788"), 0,
             ("Oliver", "Olivia", "George", "Amelia", "Harry", "Isla", "Jack", "Ava", "Charlie", "Emily",
              "Thomas", "Sophie", "Oscar", "Grace", "William", "Lily", "James", "Freya", "Alfie", "Chloe"),
             ("Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
              "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Hughes",
              "Edwards", "Green", "Hall"),
             ("gmail.com", "hotmail.co.uk", "outlook.com", "yahoo.co.uk", "btinternet.com", "icloud.com")),
    _Country("DE", 0.22, "49", True,
             _cities(("Berlin", "Europe/Berlin", "30", 0),
                     ("München", "Europe/Berlin", "89", 0),
                     ("Hamburg", "Europe/Berlin", "40", 0),
                     ("Köln", "Europe/Berlin", "221", 0),
                     ("Frankfurt am Main", "Europe/Berlin", "69", 0)),
             (0.32, 0.2, 0.2, 0.14, 0.14), ("151", "160", "170", "176"), 0,
             ("Maximilian", "Sophie", "Alexander", "Marie", "Paul", "Emma", "Lukas", "Hannah", "Jonas",
              "Anna", "Felix", "Mia", "Leon", "Lena", "Jürgen", "Sabine", "Stefan", "Katrin", "Jörg", "Ute"),
             ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
              "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
              "Schwarz", "Zimmermann"),
             ("gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.de", "posteo.de")),
    _Country("FR", 0.13, "33", True,
             _cities(("Paris", "Europe/Paris", "1", 1),
                     ("Lyon", "Europe/Paris", "4", 1),
                     ("Marseille", "Europe/Paris", "4", 1),
                     ("Toulouse", "Europe/Paris", "5", 1),
                     ("Bordeaux", "Europe/Paris", "5", 1),
                     ("Lille", "Europe/Paris", "3", 1)),
             (0.4, 0.14, 0.13, 0.12, 0.11, 0.1), ("6", "7"), 1,
             ("Gabriel", "Louise", "Léo", "Jade", "Raphaël", "Emma", "Louis", "Chloé", "Lucas", "Manon",
              "Hugo", "Camille", "Jules", "Léa", "Arthur", "Inès", "Nathan", "Zoé", "Théo", "Élise"),
             ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
              "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
              "Vincent", "Fournier"),
             ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr", "sfr.fr")),
    _Country("NL", 0.08, "31", True,
             _cities(("Amsterdam", "Europe/Amsterdam", "20", 0),
                     ("Rotterdam", "Europe/Amsterdam", "10", 0),
                     ("Utrecht", "Europe/Amsterdam", "30", 0),
                     ("Den Haag", "Europe/Amsterdam", "70", 0),
                     ("Eindhoven", "Europe/Amsterdam", "40", 0)),
             (0.36, 0.2, 0.16, 0.16, 0.12), ("6",), 1,
             ("Daan", "Emma", "Sem", "Julia", "Lucas", "Mila", "Levi", "Tess", "Finn", "Sophie", "Milan",
              "Zoë", "Jesse", "Sara", "Bram", "Anna", "Thijs", "Fleur", "Ruben", "Lotte"),
             ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
              "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
              "van Leeuwen", "Dekker", "Brouwer"),
             ("gmail.com", "hotmail.nl", "ziggo.nl", "kpnmail.nl", "outlook.com", "live.nl")),
    _Country("ES", 0.12, "34", False,
             _cities(("Madrid", "Europe/Madrid", "91", 0),
                     ("Barcelona", "Europe/Madrid", "93", 0),
                     ("Valencia", "Europe/Madrid", "96", 0),
                     ("Sevilla", "Europe/Madrid", "95", 0),
                     ("Bilbao", "Europe/Madrid", "94", 0)),
             (0.36, 0.3, 0.13, 0.12, 0.09), ("6", "7"), 1,
             ("Hugo", "Lucía", "Martín", "Sofía", "Pablo", "María", "Alejandro", "Paula", "Daniel",
              "Valeria", "Álvaro", "Carmen", "Javier", "Laura", "Sergio", "Elena", "Diego", "Marta",
              "Adrián", "Ana"),
             ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
              "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez",
              "Romero", "Alonso", "Navarro"),
             ("gmail.com", "hotmail.es", "yahoo.es", "outlook.es", "telefonica.net", "icloud.com")),
)
# fmt: on

COUNTRY_CODES = tuple(c.code for c in COUNTRIES)
CALLING_CODES = {c.code: c.calling_code for c in COUNTRIES}

# category: (median price, popularity, nouns)
# fmt: off
CATEGORIES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "Electronics": (120.0, 1.3, ("Headphones", "Speaker", "Charger", "Smartwatch", "Keyboard", "Webcam")),
    "Home & Kitchen": (45.0, 1.4, ("Pan", "Knife Set", "Kettle", "Blender", "Cutting Board", "Mug Set")),
    "Fashion": (40.0, 1.6, ("T-Shirt", "Sneakers", "Jacket", "Scarf", "Jeans", "Hoodie")),
    "Beauty": (22.0, 1.1, ("Face Cream", "Serum", "Lip Balm", "Shampoo", "Perfume", "Hand Soap")),
    "Sports & Outdoors": (55.0, 0.9, ("Yoga Mat", "Water Bottle", "Backpack", "Tent", "Dumbbells",
                                      "Running Belt")),
    "Toys": (25.0, 0.8, ("Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite", "Toy Car")),
    "Books": (15.0, 0.9, ("Cookbook", "Novel", "Travel Guide", "Notebook", "Comic", "Atlas")),
    "Grocery": (8.0, 1.0, ("Coffee Beans", "Olive Oil", "Dark Chocolate", "Tea Box", "Granola",
                           "Hot Sauce")),
    "Garden": (35.0, 0.6, ("Planter", "Hose", "Pruning Shears", "Seed Kit", "Garden Gloves", "Lantern")),
    "Pet Supplies": (20.0, 0.7, ("Dog Leash", "Cat Tree", "Pet Bed", "Chew Toy", "Food Bowl",
                                 "Grooming Brush")),
    "Jewelry": (90.0, 0.5, ("Necklace", "Ring", "Bracelet", "Earrings", "Watch", "Pendant")),
}
ADJECTIVES = ("Classic", "Premium", "Everyday", "Compact", "Deluxe", "Eco", "Urban", "Vintage", "Smart",
              "Organic", "Nordic", "Pro", "Essential", "Travel", "Signature", "Soft", "Bold", "Mini")
# fmt: on

N_PRODUCTS = 200

CAMPAIGNS: tuple[tuple[str, str, str], ...] = (
    ("google", "cpc", "brand_search"),
    ("google", "cpc", "generic_search"),
    ("newsletter", "email", "newsletter_weekly"),
    ("facebook", "paid_social", "prospecting"),
    ("facebook", "paid_social", "retargeting"),
    ("instagram", "social", "organic_post"),
    ("instagram", "social", "influencer"),
)
CAMPAIGN_WEIGHTS = np.array([0.16, 0.12, 0.22, 0.16, 0.12, 0.12, 0.10])
UTM_SHARE = 0.55  # share of web sessions arriving with utm parameters (the rest is direct traffic)
BF_CAMPAIGN_SOURCES = (("newsletter", "email"), ("google", "cpc"), ("facebook", "paid_social"))

EVENT_TYPES = (
    "page_view",
    "app_open",
    "signup",
    "login",
    "product_view",
    "form_submit",
    "add_to_cart",
    "checkout_started",
)
(EV_PAGE, EV_APP_OPEN, EV_SIGNUP, EV_LOGIN, EV_PRODUCT, EV_FORM, EV_CART, EV_CHECKOUT) = range(8)
EVENT_PATHS = ("/", None, "/account/signup", "/account/login", "/p/", "/newsletter", "/p/", "/checkout")

# session kinds and identity modes
(S_PRE, S_SIGNUP, S_PURCHASE, S_BROWSE, S_ABANDON, S_VISITOR) = range(6)
(M_ANON, M_AUTH, M_KNOWN) = range(3)


# --------------------------------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDataSummary:
    """What ``generate_demo_data`` wrote. Counts are rows in the landing zone, malformed rows included.

    ``customers`` counts customer accounts (``customer_id`` values), duplicate accounts included.
    """

    customers: int
    contacts_rows: int
    orders: int
    order_items: int
    events: int
    consents: int
    duplicates_planted: int
    malformed_planted: int
    start_date: dt.date
    end_date: dt.date
    out_dir: Path
    truth_dir: Path


# --------------------------------------------------------------------------------------------------
# Counter-based hashing: identity is a pure function of (seed, customer index)
# --------------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection on uint64, so distinct inputs give distinct outputs."""
    z = np.array(x, dtype=np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _key(seed: int, stream: int) -> np.uint64:
    """A 64-bit key for one (seed, stream) pair."""
    raw = (seed * 0x9E3779B97F4A7C15 + (stream + 1) * 0xD1B54A32D192ED03) & _MASK64
    return _mix64(np.array([raw], dtype=np.uint64))[0]


def _hash_u(seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per index, independent across streams."""
    h = _mix64(_mix64(np.asarray(idx, dtype=np.uint64) ^ _key(seed, stream)) + _key(seed, stream + 1000))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _hash_ids(seed: int, stream: int, counters: np.ndarray) -> np.ndarray:
    """Random-looking but unique 64-bit ids for distinct counters."""
    return _mix64(np.asarray(counters, dtype=np.uint64) ^ _key(seed, stream))


def _pick(u: np.ndarray, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Map uniforms to category indices with the given weights."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(cdf) - 1)


# --------------------------------------------------------------------------------------------------
# Fast string formatting (fixed-width byte matrices -> Arrow strings)
# --------------------------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _matrix_to_arrow(m: np.ndarray) -> pa.Array:
    """Rows of a uint8 matrix (ASCII) as an Arrow string array."""
    m = np.ascontiguousarray(m, dtype=np.uint8)
    n, width = m.shape
    if n == 0:
        return pa.array([], type=pa.string())
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(m)])
    return fixed.cast(pa.binary()).cast(pa.string())


def _literal(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text)))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.uint8)
    v = np.asarray(values, dtype=np.int64).copy()
    for k in range(width - 1, -1, -1):
        out[:, k] = v % 10 + 48
        v //= 10
    return out


def _hex_ids(prefix: str, ids: np.ndarray) -> pa.Array:
    """``prefix`` + 16 lowercase hex digits per uint64."""
    n = len(ids)
    raw = np.ascontiguousarray(np.asarray(ids, dtype=np.uint64)).byteswap().view(np.uint8).reshape(n, 8)
    hexed = np.empty((n, 16), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 15]
    return _matrix_to_arrow(np.hstack([_literal(prefix, n), hexed]))


def _number_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal numbers (wider numbers are not truncated)."""
    text = pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, width=width, padding="0"), "")


def _money_text(cents: np.ndarray) -> pa.Array:
    """Cents as plain decimal text with a dot: ``1234`` -> ``"12.34"``, ``-5`` -> ``"-0.05"``."""
    cents = np.asarray(cents, dtype=np.int64)
    sign = pa.array(np.where(cents < 0, "-", ""))
    units = pc.cast(pa.array(np.abs(cents) // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(cents) % 100), pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(sign, units, ".", frac, "")


def _take(strings: pa.Array, idx: np.ndarray) -> pa.Array:
    """``strings[idx]`` with null where ``idx < 0``."""
    idx = np.asarray(idx, dtype=np.int64)
    return strings.take(pa.array(np.where(idx < 0, 0, idx), mask=idx < 0))


class _Timestamps:
    """Formats integer seconds since the window start as ISO 8601 text, fast (lookup tables)."""

    PRE_DAYS = 3

    def __init__(self, start: dt.date, n_days: int) -> None:
        days = np.datetime64(start, "D") + np.arange(-self.PRE_DAYS, n_days + self.PRE_DAYS)
        text = np.datetime_as_string(days, unit="D").astype("S10")
        self._days = np.frombuffer(text.tobytes(), dtype=np.uint8).reshape(len(days), 10)
        sod = np.arange(SECONDS_PER_DAY)
        self._tod = np.hstack(
            [
                _digits(sod // 3600, 2),
                _literal(":", len(sod)),
                _digits(sod // 60 % 60, 2),
                _literal(":", len(sod)),
                _digits(sod % 60, 2),
            ]
        )
        months = days.astype("datetime64[M]")
        self.month_names = sorted({str(m) for m in months})
        month_pos = {m: i for i, m in enumerate(self.month_names)}
        self._day_month = np.array([month_pos[str(m)] for m in months], dtype=np.int64)

    def _day_index(self, secs: np.ndarray) -> np.ndarray:
        return np.asarray(secs, dtype=np.int64) // SECONDS_PER_DAY + self.PRE_DAYS

    def month(self, secs: np.ndarray) -> np.ndarray:
        """Index into ``month_names`` (``YYYY-MM``) of each UTC timestamp."""
        return self._day_month[self._day_index(secs)]

    def _body(self, secs: np.ndarray, sep: str) -> list[np.ndarray]:
        secs = np.asarray(secs, dtype=np.int64)
        n = len(secs)
        return [self._days[self._day_index(secs)], _literal(sep, n), self._tod[secs % SECONDS_PER_DAY]]

    def utc(self, secs: np.ndarray) -> pa.Array:
        """``2025-03-01T10:04:05Z``."""
        return _matrix_to_arrow(np.hstack([*self._body(secs, "T"), _literal("Z", len(secs))]))

    def local(self, secs: np.ndarray, offset_minutes: np.ndarray) -> pa.Array:
        """Local wall time with its UTC offset: ``2025-03-01T12:04:05+02:00``."""
        off = np.asarray(offset_minutes, dtype=np.int64)
        n = len(off)
        sign = np.where(off < 0, ord("-"), ord("+")).astype(np.uint8)[:, None]
        tail = [sign, _digits(np.abs(off) // 60, 2), _literal(":", n), _digits(np.abs(off) % 60, 2)]
        return _matrix_to_arrow(np.hstack([*self._body(np.asarray(secs) + off * 60, "T"), *tail]))


# --------------------------------------------------------------------------------------------------
# Calendar: seasonality, Black Friday, intensity and its inverse
# --------------------------------------------------------------------------------------------------


def black_friday(year: int) -> dt.date:
    """The day after the fourth Thursday of November."""
    first = dt.date(year, 11, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(days=22)


class _Calendar:
    """Hourly purchase intensity over the window plus the future horizon, and the signup distribution.

    Times are float days since ``start`` 00:00 UTC. ``lam`` is the integrated intensity (in days of
    average activity), so a Poisson process with rate r per year has inter-purchase gaps of
    ``Exp(1) * 365 / r`` in ``lam`` units.
    """

    def __init__(self, start: dt.date, days: int, future_days: int = FUTURE_DAYS) -> None:
        self.start, self.days, self.horizon = start, days, days + future_days
        dates = pd.date_range(start, periods=self.horizon, freq="D")
        doy = dates.dayofyear.to_numpy()
        self.bf_week = self._bf_mask(dates)
        season = 1.0 + 0.30 * np.cos(2 * np.pi * (doy - 350) / 365.25)
        weekday = WEEKDAY_PROFILE[dates.weekday.to_numpy()]
        day_rate = season * weekday * np.where(self.bf_week, BLACK_FRIDAY_RATE, 1.0)
        rate = (day_rate[:, None] * HOUR_PROFILE[None, :]).ravel()
        self.rate = rate / rate[: days * 24].mean()
        self.cum = np.concatenate([[0.0], np.cumsum(self.rate / 24.0)])
        growth = np.exp(0.55 * np.arange(days) / 365.0)
        signup_day = growth * (1 + 0.2 * np.cos(2 * np.pi * (doy[:days] - 350) / 365.25)) * weekday[:days]
        signup_day *= np.where(self.bf_week[:days], 1.8, 1.0)
        signup_day[-RECENT_DAYS:] *= SIGNUP_DRIVE_RATE
        signup = (signup_day[:, None] * HOUR_PROFILE[None, :]).ravel()
        self.signup_cdf = np.concatenate([[0.0], np.cumsum(signup)]) / signup.sum()
        self.years = sorted({d.year for d in dates})
        self.year_of_day = dates.year.to_numpy()
        self.month_day = np.stack([dates.month.to_numpy(), dates.day.to_numpy()], axis=1)

    @staticmethod
    def _bf_mask(dates: pd.DatetimeIndex) -> np.ndarray:
        mask = np.zeros(len(dates), dtype=bool)
        for year in sorted(set(dates.year)):
            bf = pd.Timestamp(black_friday(year))
            mask |= (dates >= bf - pd.Timedelta(days=4)) & (dates <= bf + pd.Timedelta(days=3))
        return mask

    def black_friday_weeks(self) -> list[tuple[str, str]]:
        """(first day, last day) of each Black Friday week inside the window."""
        out = []
        for year in self.years:
            bf = black_friday(year)
            lo, hi = bf - dt.timedelta(days=4), bf + dt.timedelta(days=3)
            if lo >= self.start and hi < self.start + dt.timedelta(days=self.days):
                out.append((lo.isoformat(), hi.isoformat()))
        return out

    def lam(self, t: np.ndarray) -> np.ndarray:
        hours = np.clip(np.asarray(t, dtype=np.float64) * 24.0, 0.0, self.horizon * 24.0)
        h = np.minimum(hours.astype(np.int64), len(self.rate) - 1)
        return self.cum[h] + (hours - h) * self.rate[h] / 24.0

    def lam_inv(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        h = np.clip(np.searchsorted(self.cum, y, side="right") - 1, 0, len(self.rate) - 1)
        t = (h + (y - self.cum[h]) / (self.rate[h] / 24.0)) / 24.0
        return np.where(y >= self.cum[-1], _INF, t)

    def spread(self, a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Times between a and b distributed like the intensity (u uniform in [0, 1))."""
        la, lb = self.lam(a), self.lam(b)
        return np.minimum(self.lam_inv(la + u * (lb - la)), b)

    def signup_days(self, q: np.ndarray) -> np.ndarray:
        """Quantiles of the signup distribution -> float days (monotone in q)."""
        h = np.clip(np.searchsorted(self.signup_cdf, q, side="right") - 1, 0, len(self.signup_cdf) - 2)
        frac = (q - self.signup_cdf[h]) / (self.signup_cdf[h + 1] - self.signup_cdf[h])
        return (h + np.clip(frac, 0.0, 0.999)) / 24.0

    def day_index(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(t, dtype=np.float64).astype(np.int64), 0, self.horizon - 1)


# --------------------------------------------------------------------------------------------------
# Phones and emails
# --------------------------------------------------------------------------------------------------
PHONE_FORMATS = ("e164", "intl", "intl00", "national", "national_dash")
PHONE_FORMAT_WEIGHTS = (0.25, 0.20, 0.10, 0.30, 0.15)
US_FORMATS = ("e164", "intl_paren", "us_paren", "us_dash", "us_dot", "us_one")


def _group_nsn(country: str, nsn: str, area_len: int) -> list[str]:
    """Split a national significant number into the groups people usually write."""

    def split(sizes: Sequence[int]) -> list[str]:
        out, pos = [], 0
        for size in sizes:
            out.append(nsn[pos : pos + size])
            pos += size
        if pos < len(nsn):
            out.append(nsn[pos:])
        return [g for g in out if g]

    if country == "US":
        return split((3, 3, 4))
    if country == "GB":
        return (
            split((4, 6)) if nsn.startswith("7") else split((area_len, 4, 4) if area_len == 2 else (3, 3, 4))
        )
    if country == "FR":
        return split((1, 2, 2, 2, 2))
    if country == "NL":
        return split((1, 8)) if nsn.startswith("6") else split((2, 3, 4))
    if country == "ES":
        return split((3, 2, 2, 2))
    return [nsn[:area_len], nsn[area_len:]]


def format_phone(country: str, nsn: str, area_len: int, style: str) -> str:
    """Write a national significant number in one of the common styles."""
    cc = CALLING_CODES[country]
    groups = _group_nsn(country, nsn, area_len)
    if style == "e164":
        return f"+{cc}{nsn}"
    if country == "US":
        a, b, c = groups
        return {
            "intl_paren": f"+1 ({a}) {b}-{c}",
            "us_paren": f"({a}) {b}-{c}",
            "us_dash": f"{a}-{b}-{c}",
            "us_dot": f"{a}.{b}.{c}",
            "us_one": f"1-{a}-{b}-{c}",
            "intl": f"+1 {a} {b} {c}",
        }[style]
    trunk = "0" if country != "ES" else ""
    if style == "intl":
        return f"+{cc} " + " ".join(groups)
    if style == "intl00":
        return f"00{cc} " + " ".join(groups)
    if style == "national":
        return trunk + " ".join(groups)
    sep = "." if country == "FR" else "-"
    if country in ("DE", "NL", "GB"):
        return trunk + groups[0] + "-" + "".join(groups[1:])
    return trunk + sep.join(groups)


def _ascii_slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in text if ch.isalnum())


def _email_local(first: str, last: str, style: int, number: int) -> str:
    f, lst = _ascii_slug(first), _ascii_slug(last)
    return (
        f"{f}.{lst}{number}",
        f"{f}{lst}{number}",
        f"{f[0]}{lst}{number}",
        f"{f}_{lst}{number}",
        f"{lst}.{f}{number}",
        f"{f}{number}",
    )[style]


def _typed_variant(email: str, kind: int) -> str:
    """The same address as a person might type it (case and surrounding spaces differ)."""
    local, _, domain = email.partition("@")
    if kind == 0:
        return email.upper()
    if kind == 1:
        return ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + domain.capitalize()
    if kind == 2:
        return f" {email} "
    if kind == 3:
        return email.capitalize() + " "
    return "  " + email.upper()


def _bad_email(email: str, kind: int) -> str:
    local, _, domain = email.partition("@")
    return (f"{local}@", f"{local}{domain}", f"{local}@{domain.split('.')[0]}", f"{local}@@{domain}")[kind]


# --------------------------------------------------------------------------------------------------
# Identity: pure functions of (seed, global account index)
# --------------------------------------------------------------------------------------------------
(
    H_COUNTRY,
    H_CITY,
    H_FIRST,
    H_LAST,
    H_STYLE,
    H_DOMAIN,
    H_PHONE,
    H_PHONE_KIND,
    H_PHONE_FMT,
    H_AREA,
    H_DUP,
    H_ORIG,
    H_CORRUPT,
    H_SIGNUP,
    H_EMAIL_CASE,
    H_SHARED,
    H_DUP_VARIANT,
    H_CORRUPT_KIND,
    H_REST,
    H_ANON,
    H_SESSION,
    H_EVENT,
) = range(0, 220, 10)
H_BIRTH = 220  # a stream of its own after those above: adding it changed none of their draws
BIRTH_DATE_RATE = 0.8  # contacts with a birth date
BIRTH_FIRST, BIRTH_SPAN_DAYS = dt.date(1950, 1, 1), 55 * 365  # born 1950 to 2005
# Lead signals (the planted truth the lead score is checked against, docs/leads.md): streams of their
# own, so adding them changed none of the draws above. A "hot" lead is an account with a first
# purchase (in the window or after it) at least LEAD_MIN_LEAD_DAYS after its signup that shows intent
# first: 1 to 3 pricing page views or webinar registrations 2 to 28 days before that purchase. Other
# accounts show one such signal at a random time with LEAD_NOISE_RATE (interest that does not buy).
H_LEAD = 230
LEAD_HOT_RATE = 0.7
LEAD_NOISE_RATE = 0.12
LEAD_MIN_LEAD_DAYS = 3.0
LEAD_SIGNAL_DAYS = (2.0, 28.0)  # how long before the first purchase a hot lead's signals come
LEAD_PATHS = ("/pricing", "/webinar")  # a page_view of pricing, a form_submit registering for a webinar
# Staff, owners and CRM lead stages (docs/staff.md): streams of their own, so adding them changed
# none of the draws above. A sales team of two managers and six reps (one inactive); leads (no
# completed purchase in the window) get an owner with STAFF_LEAD_OWNER_RATE, buyers with
# STAFF_BUYER_OWNER_RATE; STAFF_CONTACT_OWNER_RATE of those links are contacts.owner_id instead
# of a crm/customer_owners row, and STAFF_SECOND_OWNER_RATE get a second rep linked later. Leads
# with planted signals get CRM stages after their last signal: sales_accepted, then opportunity,
# then deal or lost.
H_STAFF = 240
STAFF_SINK = "http://127.0.0.1:8091/staff/"  # the demo's local HTTP sink
STAFF_DOMAIN = "shop.example.com"
# (staff_id, name, manager_id, team, time zone, active, handle: webhook or email)
DEMO_STAFF = (
    ("stf_m1", "Maren Vogt", "", "sales-north", "Europe/Berlin", True, "webhook"),
    ("stf_m2", "Luis Romero", "", "sales-south", "Europe/Madrid", True, "email"),
    ("stf_01", "Anna Berg", "stf_m1", "sales-north", "Europe/Berlin", True, "webhook"),
    ("stf_02", "Jonas Lind", "stf_m1", "sales-north", "Europe/Stockholm", True, "webhook"),
    ("stf_03", "Emma Dubois", "stf_m1", "sales-north", "Europe/Paris", True, "email"),
    ("stf_04", "Marco Rossi", "stf_m2", "sales-south", "Europe/Rome", True, "webhook"),
    ("stf_05", "Lucia Gomez", "stf_m2", "sales-south", "Europe/Madrid", True, "webhook"),
    ("stf_06", "Piet de Vries", "stf_m2", "sales-south", "Europe/Amsterdam", False, "email"),
)
STAFF_REPS = 6  # the last six of DEMO_STAFF own customers
STAFF_LEAD_OWNER_RATE = 0.5
STAFF_BUYER_OWNER_RATE = 0.1
STAFF_CONTACT_OWNER_RATE = 0.3
STAFF_SECOND_OWNER_RATE = 0.1
STAFF_ACCEPT_RATE = 0.5  # leads with signals that sales accepted
STAFF_OPPORTUNITY_RATE = 0.5  # of those, opportunities
STAFF_DEAL_RATE, STAFF_LOST_RATE = 0.3, 0.3  # of the opportunities

EMAIL_NUMBER_MULT = 7_368_787
PHONE_SUB_MULT = 5_102_787
PHONE_SUB_SPACE = 8_000_000  # subscriber numbers 2000000..9999999, unique per account


@dataclass
class _Identity:
    """Who an account belongs to (one entry per account index)."""

    country: np.ndarray  # index into COUNTRIES
    city: list[str]
    timezone: list[str]
    first: list[str]
    last: list[str]
    email: list[str]  # clean, lower case, unique per person
    phone: list[str | None]
    phone_e164: list[str | None]
    phone_style: np.ndarray
    phone_nsn: list[str | None]
    phone_area_len: np.ndarray


class _IdentityFactory:
    """Deterministic identities, signup times, duplicate and corruption choices per account index."""

    def __init__(self, seed: int, n_accounts: int, cal: _Calendar) -> None:
        self.seed, self.n, self.cal = seed, n_accounts, cal
        self.email_space = 10 ** max(4, len(str(n_accounts)) + 1)
        self.email_offset = int(_hash_u(seed, 1, np.array([0]))[0] * self.email_space)

    def u(self, stream: int, idx: np.ndarray) -> np.ndarray:
        return _hash_u(self.seed, stream, idx)

    def signup_days(self, idx: np.ndarray) -> np.ndarray:
        q = (np.asarray(idx, dtype=np.float64) + 0.05 + 0.9 * self.u(H_SIGNUP, idx)) / self.n
        return self.cal.signup_days(q)

    def is_dup(self, idx: np.ndarray) -> np.ndarray:
        return (self.u(H_DUP, idx) < DUPLICATE_RATE) & (np.asarray(idx) >= 20)

    def is_corrupt(self, idx: np.ndarray) -> np.ndarray:
        return (self.u(H_CORRUPT, idx) < CONTACT_CORRUPT_RATE) & ~self.is_dup(idx) & (np.asarray(idx) > 0)

    def original_of(self, idx: np.ndarray) -> np.ndarray:
        """The earlier, clean, non-duplicate account each duplicate copies."""
        orig = np.floor(self.u(H_ORIG, idx) * np.asarray(idx)).astype(np.int64)
        while True:
            bad = self.is_dup(orig) | self.is_corrupt(orig)
            if not bad.any():
                return orig
            orig[bad] -= 1

    def identities(self, idx: np.ndarray) -> _Identity:
        idx = np.asarray(idx, dtype=np.int64)
        country = _pick(self.u(H_COUNTRY, idx), [c.weight for c in COUNTRIES])
        u_city, u_first, u_last = self.u(H_CITY, idx), self.u(H_FIRST, idx), self.u(H_LAST, idx)
        style = _pick(self.u(H_STYLE, idx), (0.3, 0.15, 0.15, 0.1, 0.1, 0.2))
        u_dom = self.u(H_DOMAIN, idx)
        has_phone = self.u(H_PHONE, idx) < 0.70
        mobile = self.u(H_PHONE_KIND, idx) < 0.6
        u_area, u_fmt, u_rest = self.u(H_AREA, idx), self.u(H_PHONE_FMT, idx), self.u(H_REST, idx)
        numbers = (idx * EMAIL_NUMBER_MULT + self.email_offset) % self.email_space
        subs = 2_000_000 + (idx * PHONE_SUB_MULT + self.email_offset) % PHONE_SUB_SPACE
        out = _Identity(
            country,
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            np.zeros(len(idx), np.int64),
            [],
            np.zeros(len(idx), np.int64),
        )
        city_pos, style_pos = np.zeros(len(idx), np.int64), np.zeros(len(idx), np.int64)
        for c, spec in enumerate(COUNTRIES):
            sel = country == c
            city_pos[sel] = _pick(u_city[sel], spec.city_weights)
            style_pos[sel] = _pick(u_fmt[sel], [1.0] * 6 if spec.code == "US" else PHONE_FORMAT_WEIGHTS)
        for k in range(len(idx)):
            spec = COUNTRIES[country[k]]
            city = spec.cities[city_pos[k]]
            first = spec.first_names[int(u_first[k] * len(spec.first_names))]
            last = spec.last_names[int(u_last[k] * len(spec.last_names))]
            out.city.append(city.name)
            out.timezone.append(city.timezone)
            out.first.append(first)
            out.last.append(last)
            domain = spec.domains[int(u_dom[k] * len(spec.domains))]
            out.email.append(f"{_email_local(first, last, int(style[k]), int(numbers[k]))}@{domain}")
            if not has_phone[k]:
                out.phone.append(None), out.phone_e164.append(None), out.phone_nsn.append(None)
                continue
            areas, rest = (
                (spec.mobile_areas, spec.mobile_rest_digits) if mobile[k] else (city.areas, city.rest_digits)
            )
            area = areas[int(u_area[k] * len(areas))]
            extra = str(int(u_rest[k] * 10**rest)).zfill(rest) if rest else ""
            extra = ("7" if area == "20" and spec.code == "GB" else "") + extra[: rest - (area == "20")]
            nsn = area + extra + str(int(subs[k]))
            styles = US_FORMATS if spec.code == "US" else PHONE_FORMATS
            style_k = int(style_pos[k])
            out.phone_style[k], out.phone_area_len[k] = style_k, len(area)
            out.phone.append(format_phone(spec.code, nsn, len(area), styles[style_k]))
            out.phone_e164.append(f"+{spec.calling_code}{nsn}")
            out.phone_nsn.append(nsn)
        return out


# --------------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------------


@dataclass
class _Catalogue:
    ids: pa.Array
    names: list[str]
    category: np.ndarray  # category index per product
    price_cents: np.ndarray
    category_names: tuple[str, ...]
    category_popularity: np.ndarray
    by_category: list[np.ndarray]  # product indices per category, most popular first
    cdf_by_category: list[np.ndarray]

    def sample(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
        """One product per requested category, Zipf-like popularity within the category."""
        out = np.empty(len(categories), dtype=np.int64)
        u = rng.random(len(categories))
        for c, members in enumerate(self.by_category):
            sel = categories == c
            if sel.any():
                pos = np.searchsorted(self.cdf_by_category[c], u[sel], side="right")
                out[sel] = members[np.minimum(pos, len(members) - 1)]
        return out


def _build_catalogue(seed: int) -> _Catalogue:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1 << 30]))
    names, cats, prices = [], [], []
    per_category = np.full(len(CATEGORIES), N_PRODUCTS // len(CATEGORIES))
    per_category[: N_PRODUCTS % len(CATEGORIES)] += 1
    for c, (_cat, (median, _pop, nouns)) in enumerate(CATEGORIES.items()):
        combos = [f"{a} {n}" for a in ADJECTIVES for n in nouns]
        for k in rng.choice(len(combos), size=int(per_category[c]), replace=False):
            names.append(combos[int(k)])
            cats.append(c)
            prices.append(max(1.0, median * float(rng.lognormal(0.0, 0.45))))
    order = rng.permutation(len(names))
    category = np.array(cats)[order]
    price_cents = np.round(np.array(prices)[order] * 100).astype(np.int64)
    price_cents = price_cents - price_cents % 100 + np.where(price_cents >= 1000, 99, 49)
    by_category, cdfs = [], []
    for c in range(len(CATEGORIES)):
        members = rng.permutation(np.flatnonzero(category == c))
        weights = 1.0 / np.arange(1, len(members) + 1) ** 0.8
        by_category.append(members)
        cdfs.append(np.cumsum(weights) / weights.sum())
    popularity = np.array([p for _m, p, _n in CATEGORIES.values()])
    return _Catalogue(
        _number_ids("p_", np.arange(1, len(names) + 1), 4),
        [names[i] for i in order],
        category,
        price_cents,
        tuple(CATEGORIES),
        popularity / popularity.sum(),
        by_category,
        cdfs,
    )


def _write_products(cat: _Catalogue, out_dir: Path) -> int:
    table = pa.table(
        {
            "product_id": cat.ids,
            "name": pa.array(cat.names),
            "category": pa.array([cat.category_names[c] for c in cat.category]),
            "price": _money_text(cat.price_cents),
        }
    )
    path = out_dir / PRODUCTS.path / "products.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)
    return table.num_rows


# --------------------------------------------------------------------------------------------------
# Per-chunk behaviour
# --------------------------------------------------------------------------------------------------


@dataclass
class _Accounts:
    """Latent parameters of one chunk's accounts (local index = position in the chunk)."""

    gidx: np.ndarray
    ids: pa.Array
    signup_t: np.ndarray  # float days since window start
    persona: np.ndarray
    lam: np.ndarray  # purchases per year
    p: np.ndarray  # dropout probability after each purchase
    spend: np.ndarray  # mean order value (EUR)
    coupon: np.ndarray  # coupon propensity
    source: np.ndarray
    chan_pref: np.ndarray
    has_dev2: np.ndarray
    dev1_app: np.ndarray
    fav: np.ndarray  # (n, 2) favourite categories
    is_dup: np.ndarray
    dup_of: np.ndarray  # global index of the original or -1
    identity: _Identity
    email: list[str]  # the account's own clean email (lower case)

    @property
    def n(self) -> int:
        return len(self.gidx)

    @property
    def signup_sec(self) -> np.ndarray:
        return np.floor(self.signup_t * SECONDS_PER_DAY).astype(np.int64)

    @property
    def has_signup_event(self) -> np.ndarray:
        return SIGNUP_SOURCES[self.source]


def _draw_personas(rng: np.random.Generator, is_dup: np.ndarray) -> np.ndarray:
    shares = np.array([v["share"] for v in PERSONAS.values()])
    dup_shares = np.array([v["dup_share"] for v in PERSONAS.values()])
    u = rng.random(len(is_dup))
    return np.where(is_dup, _pick(u, dup_shares), _pick(u, shares))


def _draw_parameters(rng: np.random.Generator, persona: np.ndarray) -> dict[str, np.ndarray]:
    n = len(persona)
    table = {k: np.array([PERSONAS[name][k] for name in PERSONA_NAMES]) for k in PERSONAS["regular"]}
    shape = table["lam_shape"][persona]
    lam = rng.gamma(shape, 1.0, n) * table["lam_mean"][persona] / shape
    p = rng.beta(table["p_a"][persona], table["p_b"][persona])
    spend = np.exp(
        np.log(np.maximum(table["spend"][persona], 1.0)) + table["sigma"][persona] * rng.normal(size=n)
    )
    coupon = rng.beta(table["c_a"][persona], table["c_b"][persona])
    buyer = persona != PROSPECT
    return {
        "lam": np.where(buyer, np.clip(lam, 0.05, MAX_RATE_PER_YEAR), 0.0),
        "p": np.where(buyer, p, np.nan),
        "spend": np.where(buyer, spend, 0.0),
        "coupon": coupon,
    }


def _build_accounts(
    rng: np.random.Generator, ident: _IdentityFactory, lo: int, hi: int, id_width: int
) -> tuple[_Accounts, np.ndarray]:
    """Latent parameters and identities of accounts [lo, hi); also returns the shared-field codes."""
    gidx = np.arange(lo, hi, dtype=np.int64)
    n = len(gidx)
    is_dup = ident.is_dup(gidx)
    persona = _draw_personas(rng, is_dup)
    params = _draw_parameters(rng, persona)
    immediate = (persona != PROSPECT) & (rng.random(n) < IMMEDIATE_FIRST_ORDER)
    source = np.where(immediate, 1, _pick(rng.random(n), NON_CHECKOUT_SOURCE_P))
    chan_pref = _pick(rng.random(n), (0.62, 0.28, 0.10))
    chan_pref = np.where(source == 2, 1, np.where(source == 4, 2, chan_pref))
    has_dev2 = rng.random(n) < 0.35
    fav = np.stack(
        [_pick(rng.random(n), _category_popularity()), _pick(rng.random(n), _category_popularity())], 1
    )
    identity = ident.identities(gidx)
    dup_of = np.full(n, -1, dtype=np.int64)
    shared = np.zeros(n, dtype=np.int64)
    own_email = list(identity.email)
    if is_dup.any():
        local = np.flatnonzero(is_dup)
        dup_of[local] = ident.original_of(gidx[local])
        shared[local] = _apply_duplicates(ident, identity, local, dup_of[local], gidx[local])
        for k in local:
            own_email[k] = identity.email[k].strip().lower()
    acc = _Accounts(
        gidx,
        _number_ids("cus_", gidx + 1, id_width),
        ident.signup_days(gidx),
        persona,
        params["lam"],
        params["p"],
        params["spend"],
        params["coupon"],
        source,
        chan_pref,
        has_dev2,
        chan_pref == 1,
        fav,
        is_dup,
        dup_of,
        identity,
        own_email,
    )
    return acc, shared


def _category_popularity() -> np.ndarray:
    pop = np.array([p for _m, p, _n in CATEGORIES.values()])
    return pop / pop.sum()


def _apply_duplicates(
    ident: _IdentityFactory, identity: _Identity, local: np.ndarray, orig: np.ndarray, gidx: np.ndarray
) -> np.ndarray:
    """Make duplicate accounts share an email and/or a phone with their original. Returns shared codes.

    Shared codes: 1 email, 2 phone, 3 both.
    """
    orig_id = ident.identities(orig)
    u_shared, u_var = ident.u(H_SHARED, gidx), ident.u(H_DUP_VARIANT, gidx)
    codes = np.empty(len(local), dtype=np.int64)
    for j, k in enumerate(local):
        has_phone = orig_id.phone[j] is not None
        code = int(_pick(u_shared[j : j + 1], (0.5, 0.25, 0.25))[0]) + 1 if has_phone else 1
        codes[j] = code
        for attr in ("city", "timezone", "first", "last"):
            getattr(identity, attr)[k] = getattr(orig_id, attr)[j]
        identity.country[k] = orig_id.country[j]
        own = identity.email[k].split("@")[0] + "@" + orig_id.email[j].split("@")[1]
        identity.email[k] = _typed_variant(orig_id.email[j], int(u_var[j] * 5)) if code in (1, 3) else own
        if code == 1:
            identity.phone[k] = identity.phone_e164[k] = identity.phone_nsn[k] = None
            continue
        country = COUNTRY_CODES[orig_id.country[j]]
        styles = US_FORMATS if country == "US" else PHONE_FORMATS
        style = (int(orig_id.phone_style[j]) + 1 + int(u_var[j] * 7) % (len(styles) - 1)) % len(styles)
        identity.phone[k] = format_phone(
            country, orig_id.phone_nsn[j], int(orig_id.phone_area_len[j]), styles[style]
        )
        identity.phone_e164[k], identity.phone_nsn[k] = orig_id.phone_e164[j], orig_id.phone_nsn[j]
    return codes


# --------------------------------------------------------------------------------------------------
# Purchase process
# --------------------------------------------------------------------------------------------------


@dataclass
class _Purchases:
    cust: np.ndarray  # local account index, sorted by (cust, t)
    t: np.ndarray  # float days since window start (may exceed the window: future)
    reactivation: np.ndarray  # bool: the order that brought a dropped-out customer back
    alive_end: np.ndarray  # per account
    reactivated: np.ndarray  # per account: came back within the window


def _simulate_purchases(rng: np.random.Generator, acc: _Accounts, cal: _Calendar) -> _Purchases:
    """BG/NBD-like: Poisson purchases at rate lam (time-changed by the calendar), dropout p after each."""
    n, end = acc.n, float(cal.days)
    buyer = acc.persona != PROSPECT
    immediate = acc.source == 1
    delay = np.where(
        immediate,
        (180 + rng.exponential(600, n)) / SECONDS_PER_DAY,
        rng.exponential(FIRST_PURCHASE_DELAY_DAYS, n),
    )
    t = np.where(buyer, acc.signup_t + np.maximum(delay, 180 / SECONDS_PER_DAY), _INF)
    alive_end, reactivated = buyer.copy(), np.zeros(n, dtype=bool)
    used_return, returning = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    rec_c, rec_t, rec_r = [], [], []
    active = np.flatnonzero(t < cal.horizon)
    while active.size:
        tt = t[active]
        rec_c.append(active), rec_t.append(tt), rec_r.append(returning[active])
        in_win = tt < end
        reactivated[active[in_win & returning[active]]] = True
        alive_end[active[in_win]] = True
        drop = rng.random(active.size) < acc.p[active]
        alive_end[active[in_win & drop]] = False
        comes_back = drop & ~used_return[active] & (rng.random(active.size) < REACTIVATION_PROBABILITY)
        gap = REACTIVATION_MIN_GAP_DAYS + rng.gamma(2.0, 60.0, active.size)
        nxt = cal.lam_inv(cal.lam(tt) + rng.exponential(1.0, active.size) * 365.0 / acc.lam[active])
        nxt = np.where(comes_back, tt + gap, np.where(drop, _INF, nxt))
        used_return[active[comes_back]] = True
        returning[active] = comes_back
        t[active] = nxt
        active = active[nxt < cal.horizon]
    cust = np.concatenate(rec_c) if rec_c else np.zeros(0, np.int64)
    times = np.concatenate(rec_t) if rec_t else np.zeros(0)
    react = np.concatenate(rec_r) if rec_r else np.zeros(0, bool)
    order = np.lexsort((times, cust))
    return _Purchases(cust[order], times[order], react[order], alive_end, reactivated)


@dataclass
class _Orders:
    """All simulated orders of a chunk (window and future), sorted by (cust, t)."""

    cust: np.ndarray
    t: np.ndarray
    sec: np.ndarray
    in_window: np.ndarray
    first: np.ndarray
    amount_cents: np.ndarray
    discount_cents: np.ndarray
    coupon: np.ndarray  # index into codes or -1
    codes: list[str]
    status: np.ndarray  # 0 completed, 1 cancelled, 2 refunded
    channel: np.ndarray  # index into CHANNELS
    device: np.ndarray  # 1/2, 0 for store orders
    email_kind: np.ndarray  # -1 no email on the order, else typed variant (5 = as is)
    n_lines: np.ndarray

    @property
    def completed(self) -> np.ndarray:
        return self.status == 0


def _coupon_codes(cal: _Calendar) -> tuple[list[str], np.ndarray]:
    codes = ["SAVE10", "SAVE15", "SAVE20", "WELCOME15", "XMAS20"] + [f"BF{y}" for y in cal.years]
    rates = np.array([0.10, 0.15, 0.20, 0.15, 0.20] + [0.25] * len(cal.years))
    return codes, rates


def _order_details(rng: np.random.Generator, acc: _Accounts, pur: _Purchases, cal: _Calendar) -> _Orders:
    """Amounts, coupons, status, channel and device of each simulated purchase."""
    c, t = pur.cust, pur.t
    m = len(c)
    day = cal.day_index(t)
    bf = cal.bf_week[day]
    first = np.ones(m, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    codes, rates = _coupon_codes(cal)
    prop = acc.coupon[c]
    p_use = np.where(bf, np.minimum(0.92, 0.40 + 2.0 * prop), np.where(first, np.maximum(prop, 0.25), prop))
    use = rng.random(m) < p_use
    month, mday = cal.month_day[day, 0], cal.month_day[day, 1]
    save = _pick(rng.random(m), (0.5, 0.3, 0.2))
    xmas = (month == 12) & (mday <= 24) & (rng.random(m) < 0.6)
    bf_code = 5 + np.searchsorted(np.array(cal.years), cal.year_of_day[day])
    code = np.where(bf, bf_code, np.where(first, 3, np.where(xmas, 4, save)))
    code = np.where(use, code, -1)
    gross = np.maximum(rng.gamma(4.0, 1.0, m) * acc.spend[c] / 4.0 * np.where(bf, 1.15, 1.0), 5.0)
    gross_cents = np.round(gross * 100).astype(np.int64)
    discount = np.where(use, np.round(gross_cents * rates[np.maximum(code, 0)]).astype(np.int64), 0)
    u_status = rng.random(m)
    status = np.where(u_status < 0.03, 1, np.where(u_status < 0.05, 2, 0))
    store_p = np.where(acc.chan_pref[c] == 2, 0.7, 0.04)
    store = rng.random(m) < store_p
    device = np.where(acc.has_dev2[c] & (rng.random(m) < 0.35), 2, 1)
    is_app = np.where(device == 1, acc.dev1_app[c], ~acc.dev1_app[c])
    channel = np.where(store, 2, np.where(is_app, 1, 0))
    email_kind = np.where(
        rng.random(m) < ORDER_EMAIL_SHARE, _pick(rng.random(m), (0.1, 0.1, 0.1, 0.05, 0.05, 0.6)), -1
    )
    n_lines = 1 + rng.binomial(3, 0.22, m)
    sec = np.floor(t * SECONDS_PER_DAY).astype(np.int64)
    return _Orders(
        c,
        t,
        sec,
        t < cal.days,
        first,
        gross_cents - discount,
        discount,
        code,
        codes,
        status,
        channel,
        np.where(store, 0, device),
        email_kind,
        n_lines,
    )


def _order_items(
    rng: np.random.Generator, acc: _Accounts, orders: _Orders, sel: np.ndarray, cat: _Catalogue
) -> dict[str, np.ndarray]:
    """Order lines of the selected orders: products from the buyer's favourite categories."""
    n_lines = orders.n_lines[sel]
    order_pos = np.repeat(np.arange(len(sel)), n_lines)
    cust = orders.cust[sel][order_pos]
    u = rng.random(len(order_pos))
    categories = np.where(
        u < 0.55,
        acc.fav[cust, 0],
        np.where(u < 0.8, acc.fav[cust, 1], _pick(rng.random(len(u)), cat.category_popularity)),
    )
    product = cat.sample(rng, categories)
    gross = (orders.amount_cents + orders.discount_cents)[sel][order_pos]
    target = gross / n_lines[order_pos] / cat.price_cents[product] * rng.lognormal(0.0, 0.35, len(u))
    quantity = np.clip(np.round(target), 1, 5).astype(np.int64)
    return {
        "order_pos": order_pos,
        "product": product,
        "quantity": quantity,
        "unit_cents": cat.price_cents[product],
    }


# --------------------------------------------------------------------------------------------------
# Sessions and events
# --------------------------------------------------------------------------------------------------


@dataclass
class _Sessions:
    """Session plan; one entry per session."""

    cust: list[np.ndarray] = field(default_factory=list)  # local account index, -1 for visitors
    visitor: list[np.ndarray] = field(default_factory=list)  # local visitor index or -1
    kind: list[np.ndarray] = field(default_factory=list)
    device: list[np.ndarray] = field(default_factory=list)
    anchor: list[np.ndarray] = field(default_factory=list)  # seconds
    anchor_end: list[np.ndarray] = field(default_factory=list)  # anchored at the last event
    order: list[np.ndarray] = field(default_factory=list)  # position in the order table or -1
    n_page: list[np.ndarray] = field(default_factory=list)
    n_pv: list[np.ndarray] = field(default_factory=list)
    form: list[np.ndarray] = field(default_factory=list)
    n_atc: list[np.ndarray] = field(default_factory=list)
    checkout: list[np.ndarray] = field(default_factory=list)

    def add(self, **cols: np.ndarray | int) -> None:
        n = len(cols["cust"])  # type: ignore[arg-type]
        for name in self.__dataclass_fields__:
            value = cols.get(name, 0 if name != "order" and name != "visitor" else -1)
            getattr(self, name).append(
                np.broadcast_to(np.asarray(value), (n,)).astype(bool if name == "anchor_end" else np.int64)
            )

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(getattr(self, name)) for name in self.__dataclass_fields__}


def _poisson_times(
    rng: np.random.Generator, cal: _Calendar, a: np.ndarray, b: np.ndarray, per_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson number of sessions per row between a and b (days) at ``per_year``; returns (row, t)."""
    span = np.maximum(b - a, 0.0)
    counts = rng.poisson(per_year * span / 365.0)
    row = np.repeat(np.arange(len(a)), counts)
    t = cal.spread(a[row], b[row], rng.random(len(row)))
    return row, t


def _activity_end(rng: np.random.Generator, acc: _Accounts, pur: _Purchases, cal: _Calendar) -> np.ndarray:
    """Until when each account keeps visiting: the end for live buyers, a while after the last order else."""
    end = float(cal.days)
    last = np.full(acc.n, -1.0)
    in_win = pur.t < end
    np.maximum.at(last, pur.cust[in_win], pur.t[in_win])
    buyer = acc.persona != PROSPECT
    dormant_end = np.where(last >= 0, last, acc.signup_t) + rng.exponential(60.0, acc.n)
    prospect_end = acc.signup_t + rng.exponential(45.0, acc.n)
    out = np.where(buyer, np.where(pur.alive_end, end, dormant_end), prospect_end)
    return np.minimum(out, end)


def _plan_sessions(
    rng: np.random.Generator,
    acc: _Accounts,
    pur: _Purchases,
    orders: _Orders,
    cal: _Calendar,
    n_visitors: int,
) -> dict[str, np.ndarray]:
    """Every session of the chunk: pre-signup, signup, purchase, browsing, abandoning, anonymous visitors."""
    s = _Sessions()
    signup_sec = acc.signup_sec
    n = acc.n
    # anonymous sessions on the first device before the signup
    pre = acc.has_signup_event & (rng.random(n) < 0.55)
    k = np.where(pre, 1 + rng.binomial(2, 0.4, n), 0)
    row = np.repeat(np.arange(n), k)
    t_pre = acc.signup_t[row] - 0.02 - rng.exponential(6.0, len(row))
    keep = t_pre >= 0
    row, t_pre = row[keep], t_pre[keep]
    s.add(
        cust=row,
        kind=S_PRE,
        device=1,
        anchor=np.floor(t_pre * SECONDS_PER_DAY),
        n_page=rng.poisson(0.7, len(row)),
        n_pv=1 + rng.poisson(1.5, len(row)),
        n_atc=(rng.random(len(row)) < 0.1).astype(int),
    )
    # the signup itself
    su = np.flatnonzero(acc.has_signup_event)
    s.add(cust=su, kind=S_SIGNUP, device=1, anchor=signup_sec[su], anchor_end=True)
    # one session before each web/app order in the window
    po = np.flatnonzero(orders.in_window & (orders.channel != 2))
    extra_pv = rng.poisson(1.5, len(po))
    s.add(
        cust=orders.cust[po],
        kind=S_PURCHASE,
        device=orders.device[po],
        anchor=orders.sec[po] - rng.integers(30, 180, len(po)),
        anchor_end=True,
        order=po,
        n_page=rng.poisson(0.6, len(po)),
        n_pv=orders.n_lines[po] + extra_pv,
        n_atc=orders.n_lines[po],
        checkout=1,
    )
    _plan_browsing(rng, s, acc, pur, orders, cal)
    _plan_visitors(rng, s, cal, n_visitors)
    return s.arrays()


def _plan_browsing(
    rng: np.random.Generator, s: _Sessions, acc: _Accounts, pur: _Purchases, orders: _Orders, cal: _Calendar
) -> None:
    """Browsing sessions without purchase and cart abandoners (no order in the following 7 days)."""
    start = acc.signup_t + 60.0 / SECONDS_PER_DAY
    stop = _activity_end(rng, acc, pur, cal)
    buyer = acc.persona != PROSPECT
    row, t = _poisson_times(rng, cal, start, stop, np.where(buyer, 3.0 + 1.2 * acc.lam, 5.0))
    m = len(row)
    s.add(
        cust=row,
        kind=S_BROWSE,
        device=_session_device(rng, acc, row),
        anchor=np.floor(t * SECONDS_PER_DAY),
        n_page=rng.poisson(1.0, m),
        n_pv=1 + rng.poisson(2.0, m),
        form=(rng.random(m) < 0.04).astype(int),
    )
    row, t = _poisson_times(rng, cal, start, stop, np.where(buyer, 0.8 + 0.3 * acc.lam, 1.5))
    row, t = _no_order_within(orders, row, t, 7.0)
    m = len(row)
    s.add(
        cust=row,
        kind=S_ABANDON,
        device=_session_device(rng, acc, row),
        anchor=np.floor(t * SECONDS_PER_DAY),
        n_pv=1 + rng.poisson(1.5, m),
        n_atc=1 + rng.binomial(2, 0.3, m),
        checkout=(rng.random(m) < 0.4).astype(int),
    )
    # the sale of the last days: accounts still visiting start checkouts and leave them
    recent = np.maximum(start, float(cal.days - RECENT_DAYS))
    row, t = _poisson_times(rng, cal, recent, stop, np.full(acc.n, RECENT_ABANDON_PER_YEAR))
    row, t = _no_order_within(orders, row, t, 7.0)
    m = len(row)
    s.add(
        cust=row,
        kind=S_ABANDON,
        device=_session_device(rng, acc, row),
        anchor=np.floor(t * SECONDS_PER_DAY),
        n_pv=1 + rng.poisson(1.5, m),
        n_atc=1 + rng.binomial(2, 0.3, m),
        checkout=1,
    )


def _no_order_within(
    orders: _Orders, row: np.ndarray, t: np.ndarray, days: float
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, t) sessions whose account places no order (window or future) in the `days` after t."""
    okey = orders.cust.astype(np.float64) * 1e5 + orders.t
    skey = row.astype(np.float64) * 1e5 + t
    pos = np.searchsorted(okey, skey)
    nxt = np.where(pos < len(okey), okey[np.minimum(pos, len(okey) - 1)] if len(okey) else _INF, _INF)
    keep = ~(nxt < skey + days)
    return row[keep], t[keep]


def _session_device(rng: np.random.Generator, acc: _Accounts, row: np.ndarray) -> np.ndarray:
    return np.where(acc.has_dev2[row] & (rng.random(len(row)) < 0.35), 2, 1)


def _plan_visitors(rng: np.random.Generator, s: _Sessions, cal: _Calendar, n_visitors: int) -> None:
    """Anonymous visitors who never sign up."""
    k = 1 + rng.binomial(2, 0.3, n_visitors)
    vis = np.repeat(np.arange(n_visitors), k)
    m = len(vis)
    t = cal.spread(np.zeros(m), np.full(m, float(cal.days)), rng.random(m))
    s.add(
        cust=np.full(m, -1),
        visitor=vis,
        kind=S_VISITOR,
        device=1,
        anchor=np.floor(t * SECONDS_PER_DAY),
        n_page=rng.poisson(0.8, m),
        n_pv=rng.poisson(1.5, m),
        n_atc=(rng.random(m) < 0.15).astype(int),
    )


def _identity_modes(plan: dict[str, np.ndarray], acc: _Accounts) -> tuple[np.ndarray, np.ndarray]:
    """Per session: identity mode and auth event (0 none, EV_SIGNUP, EV_LOGIN).

    The first post-signup session on a device that did not sign up starts with a login.
    """
    kind, cust = plan["kind"], plan["cust"]
    mode = np.full(len(kind), M_KNOWN)
    mode[(kind == S_PRE) | (kind == S_VISITOR)] = M_ANON
    auth = np.zeros(len(kind), dtype=np.int64)
    auth[kind == S_SIGNUP] = EV_SIGNUP
    mode[kind == S_SIGNUP] = M_AUTH
    post = np.flatnonzero((kind == S_PURCHASE) | (kind == S_BROWSE) | (kind == S_ABANDON))
    order = post[np.lexsort((plan["anchor"][post], plan["device"][post], cust[post]))]
    if len(order):
        key = cust[order] * 4 + plan["device"][order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        sel = order[first]
        needs_login = (plan["device"][sel] == 2) | ~acc.has_signup_event[cust[sel]]
        auth[sel[needs_login]] = EV_LOGIN
        mode[sel[needs_login]] = M_AUTH
    return mode, auth


@dataclass
class _EventArrays:
    session: np.ndarray
    etype: np.ndarray
    sec: np.ndarray
    product: np.ndarray  # product index or -1
    known: np.ndarray  # carries customer_id
    landing: np.ndarray  # first event of its session


def _expand_events(
    rng: np.random.Generator,
    plan: dict[str, np.ndarray],
    mode: np.ndarray,
    auth: np.ndarray,
    acc: _Accounts,
    orders: _Orders,
    items: dict[str, np.ndarray],
    item_start: np.ndarray,
    cat: _Catalogue,
) -> _EventArrays:
    """One row per event: type from the session's segment layout, time, product, identity."""
    has_auth = (auth > 0).astype(np.int64)
    bounds = np.cumsum(
        np.stack(
            [
                np.ones_like(has_auth),
                has_auth,
                plan["n_page"],
                plan["n_pv"],
                plan["form"],
                plan["n_atc"],
                plan["checkout"],
            ],
            axis=1,
        ),
        axis=1,
    )
    n_ev = bounds[:, -1]
    sess = np.repeat(np.arange(len(n_ev)), n_ev)
    starts = np.concatenate([[0], np.cumsum(n_ev)[:-1]])
    pos = np.arange(len(sess)) - starts[sess]
    b = bounds[sess]
    app = _session_is_app(plan, acc)
    seg = (pos[:, None] >= b).sum(axis=1)  # 0 landing, 1 auth, 2 page, 3 pv, 4 form, 5 atc, 6 checkout
    etype = np.choose(
        seg,
        [
            np.where(app[sess], EV_APP_OPEN, EV_PAGE),
            auth[sess],
            EV_PAGE,
            EV_PRODUCT,
            EV_FORM,
            EV_CART,
            EV_CHECKOUT,
        ],
    )
    product = _event_products(
        rng, plan, sess, seg, pos - np.where(seg == 3, b[:, 2], b[:, 4]), acc, orders, items, item_start, cat
    )
    sec = _event_times(rng, plan, acc, sess, pos, n_ev)
    known = (mode[sess] == M_KNOWN) | ((mode[sess] == M_AUTH) & (pos >= 1))
    return _EventArrays(sess, etype, sec, product, known, pos == 0)


def _session_is_app(plan: dict[str, np.ndarray], acc: _Accounts) -> np.ndarray:
    cust = plan["cust"]
    dev1_app = np.where(cust >= 0, acc.dev1_app[np.maximum(cust, 0)], False)
    return np.where(plan["device"] == 1, dev1_app, ~dev1_app) & (cust >= 0)


def _event_products(
    rng: np.random.Generator,
    plan: dict[str, np.ndarray],
    sess: np.ndarray,
    seg: np.ndarray,
    j: np.ndarray,
    acc: _Accounts,
    orders: _Orders,
    items: dict[str, np.ndarray],
    item_start: np.ndarray,
    cat: _Catalogue,
) -> np.ndarray:
    """Products of product_view and add_to_cart events: the bought ones in purchase sessions."""
    product = np.full(len(sess), -1, dtype=np.int64)
    is_prod = (seg == 3) | (seg == 5)
    idx = np.flatnonzero(is_prod)
    cust = plan["cust"][sess[idx]]
    u = rng.random(len(idx))
    fav = np.where(cust >= 0, acc.fav[np.maximum(cust, 0), (u < 0.3).astype(int)], -1)
    random_cat = _pick(rng.random(len(idx)), cat.category_popularity)
    categories = np.where((fav >= 0) & (u < 0.8), fav, random_cat)
    product[idx] = cat.sample(rng, categories)
    order = plan["order"][sess[idx]]
    bought = (order >= 0) & (j[idx] < np.where(order >= 0, orders.n_lines[np.maximum(order, 0)], 0))
    if bought.any():
        product[idx[bought]] = items["product"][item_start[order[bought]] + j[idx[bought]]]
    return product


def _event_times(
    rng: np.random.Generator,
    plan: dict[str, np.ndarray],
    acc: _Accounts,
    sess: np.ndarray,
    pos: np.ndarray,
    n_ev: np.ndarray,
) -> np.ndarray:
    """Seconds of each event: gaps of 5 s + Exp(40 s); purchase/signup sessions end at their anchor."""
    gaps = np.where(pos == 0, 0, 5 + rng.exponential(40.0, len(sess)).astype(np.int64))
    cum = np.cumsum(gaps)
    starts = np.concatenate([[0], np.cumsum(n_ev)[:-1]])
    offset = cum - cum[starts][sess]
    total = offset[starts + n_ev - 1]
    anchor = plan["anchor"]
    cust = plan["cust"]
    floor = np.where(cust >= 0, acc.signup_sec[np.maximum(cust, 0)] + 30, 0)
    room = np.maximum(anchor - floor, 1)
    purchase = plan["kind"] == S_PURCHASE
    scale = np.where(purchase & (total > room), room / np.maximum(total, 1), 1.0)
    from_end = np.floor((total[sess] - offset) * scale[sess]).astype(np.int64)
    return np.where(plan["anchor_end"][sess], anchor[sess] - from_end, anchor[sess] + offset)


def _utm(
    rng: np.random.Generator,
    plan: dict[str, np.ndarray],
    web: np.ndarray,
    cal: _Calendar,
) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """Campaign per session (index into the returned list, -1 for direct traffic or app sessions)."""
    combos = list(CAMPAIGNS)
    bf_offset = len(combos)
    for year in cal.years:
        combos += [(src, med, f"black_friday_{year}") for src, med in BF_CAMPAIGN_SOURCES]
    n = len(web)
    has = web & (rng.random(n) < UTM_SHARE)
    choice = _pick(rng.random(n), CAMPAIGN_WEIGHTS)
    day = cal.day_index(plan["anchor"] / SECONDS_PER_DAY)
    bf = cal.bf_week[day] & (rng.random(n) < 0.6)
    year_pos = np.searchsorted(np.array(cal.years), cal.year_of_day[day])
    bf_choice = bf_offset + year_pos * len(BF_CAMPAIGN_SOURCES) + rng.integers(0, len(BF_CAMPAIGN_SOURCES), n)
    return combos, np.where(has, np.where(bf, bf_choice, choice), -1)


# --------------------------------------------------------------------------------------------------
# Chunk output tables
# --------------------------------------------------------------------------------------------------


@dataclass
class _Malformed:
    """Rows planted in a table before it is written: table row -> (field, kind, value)."""

    rows: list[int] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, row: int, field_name: str, kind: str, value: str) -> None:
        (
            self.rows.append(row),
            self.fields.append(field_name),
            self.kinds.append(kind),
            self.values.append(value),
        )


@dataclass
class _Context:
    """State shared by all chunks of one run."""

    seed: int
    n_accounts: int
    out_dir: Path
    cal: _Calendar
    ts: _Timestamps
    cat: _Catalogue
    ident: _IdentityFactory
    id_width: int
    tz_offsets: dict[str, np.ndarray]
    order_counter: int = 0
    session_counter: int = 0
    event_counter: int = 0
    visitor_counter: int = 0
    unknown_counter: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("contacts", "consents", "orders", "order_items", "events", "duplicates", "malformed"), 0
        )
    )
    malformed_rows: list[dict[str, object]] = field(default_factory=list)
    duplicate_rows: list[dict[str, str]] = field(default_factory=list)
    recent: dict[str, int] = field(default_factory=lambda: {"signups": 0, "abandoned_checkouts": 0})


def _tz_offsets(start: dt.date, n_days: int) -> dict[str, np.ndarray]:
    """UTC offset in minutes for every hour since start - PRE_DAYS, per time zone used."""
    pre = _Timestamps.PRE_DAYS
    hours = pd.date_range(
        pd.Timestamp(start, tz="UTC") - pd.Timedelta(days=pre), periods=(n_days + 2 * pre) * 24, freq="h"
    )
    zones = sorted({city.timezone for c in COUNTRIES for city in c.cities})
    out = {}
    for zone in zones:
        local = hours.tz_convert(zone).tz_localize(None)
        out[zone] = ((local - hours.tz_localize(None)).total_seconds() // 60).to_numpy().astype(np.int64)
    return out


def _contacts_table(
    rng: np.random.Generator, ctx: _Context, acc: _Accounts, bad: _Malformed, owners: _Owners
) -> pa.Table:
    """CRM rows: one per account, a few in-place corruptions, a few extra rows without customer_id."""
    ident, n = acc.identity, acc.n
    secs = acc.signup_sec
    tz_hours = secs // 3600 + _Timestamps.PRE_DAYS * 24
    offsets = np.array(
        [ctx.tz_offsets[z][h] for z, h in zip(ident.timezone, tz_hours, strict=True)], np.int64
    )
    local = rng.random(n) < 0.3
    created = pc.if_else(pa.array(local), ctx.ts.local(secs, offsets), ctx.ts.utc(secs))
    email_case = ctx.ident.u(H_EMAIL_CASE, acc.gidx)
    emails = [
        e if (acc.is_dup[k] or email_case[k] >= 0.08) else e.capitalize() for k, e in enumerate(ident.email)
    ]
    cols = {
        "customer_id": acc.ids.to_pylist(),
        "email": emails,
        "phone": ident.phone,
        "first_name": ident.first,
        "last_name": ident.last,
        "country": [COUNTRY_CODES[c] for c in ident.country],
        "city": ident.city,
        "timezone": ident.timezone,
        "created_at": created.to_pylist(),
        "source": [SOURCES[s] for s in acc.source],
        "birth_date": _birth_dates(ctx, acc.gidx),
        "owner_id": [DEMO_STAFF[owners.first[k]][0] if owners.on_contact[k] else None for k in range(n)],
    }
    corrupt = np.flatnonzero(ctx.ident.is_corrupt(acc.gidx))
    kind_u = ctx.ident.u(H_CORRUPT_KIND, acc.gidx)
    for k in corrupt:
        if kind_u[k] < 0.6:
            value = _bad_email(ident.email[k], int(kind_u[k] / 0.15))
            cols["email"][k] = value
            bad.add(int(k), "email", "bad_email", value)
        else:
            value = BAD_TIMESTAMPS[int((kind_u[k] - 0.6) / 0.4 * len(BAD_TIMESTAMPS))]
            cols["created_at"][k] = value
            bad.add(int(k), "created_at", "bad_timestamp", value)
    table = pa.table({name: pa.array(values, type=pa.string()) for name, values in cols.items()})
    return _insert_missing_ids(
        rng, table, bad, CONTACT_MISSING_ID_RATE, blank=("customer_id", "email", "phone")
    )


def _birth_dates(ctx: _Context, gidx: np.ndarray) -> list[str | None]:
    """YYYY-MM-DD for BIRTH_DATE_RATE of the accounts, uniform over BIRTH_SPAN_DAYS; else none."""
    has = ctx.ident.u(H_BIRTH, gidx) < BIRTH_DATE_RATE
    days = (ctx.ident.u(H_BIRTH + 1, gidx) * BIRTH_SPAN_DAYS).astype(np.int64)
    return [
        (BIRTH_FIRST + dt.timedelta(days=int(d))).isoformat() if h else None
        for h, d in zip(has, days, strict=True)
    ]


def _insert_missing_ids(
    rng: np.random.Generator, table: pa.Table, bad: _Malformed, rate: float, blank: tuple[str, ...]
) -> pa.Table:
    """Insert copies of random rows with the id (and identifying fields) cleared, at random positions."""
    n = table.num_rows
    extra = int(rng.binomial(n, rate)) if n else 0
    if not extra:
        return table
    src = rng.integers(0, n, extra)
    copies = table.take(pa.array(src))
    for name in blank:
        i = copies.schema.get_field_index(name)
        copies = copies.set_column(i, name, pa.nulls(extra, type=pa.string()))
    combined = pa.concat_tables([table, copies])
    order = np.argsort(np.concatenate([np.arange(n) * 2.0, rng.random(extra) * 2.0 * n - 1.0]), kind="stable")
    where = np.empty(n + extra, dtype=np.int64)
    where[order] = np.arange(n + extra)
    bad.rows[:] = [int(where[r]) for r in bad.rows]
    for r in where[n:]:
        bad.add(int(r), blank[0], "missing_id", "")
    return combined.take(pa.array(order))


def _consents_table(rng: np.random.Generator, ctx: _Context, acc: _Accounts, bad: _Malformed) -> pa.Table:
    """Consent events: grants at signup, some later grants, ~5% revocations, a few malformed rows."""
    n, end_sec = acc.n, ctx.cal.days * SECONDS_PER_DAY - 1
    signup = acc.signup_sec
    app_user = acc.dev1_app | acc.has_dev2
    p_grant = np.stack([np.full(n, 0.70), np.full(n, 0.35), np.where(app_user, 0.45, 0.05)], axis=1)
    granted = rng.random((n, 3)) < p_grant
    cust, chan = np.nonzero(granted)
    at = signup[cust] + rng.integers(2, 90, len(cust))
    late_c, late_ch = np.nonzero(~granted & (rng.random((n, 3)) < 0.06))
    late_at = signup[late_c] + (rng.exponential(120.0, len(late_c)) * SECONDS_PER_DAY).astype(np.int64)
    revoke = rng.random(len(cust)) < 0.05
    rev_at = at[revoke] + (rng.random(int(revoke.sum())) * (end_sec - at[revoke])).astype(np.int64)
    rows_c = np.concatenate([cust, late_c, cust[revoke]])
    rows_ch = np.concatenate([chan, late_ch, chan[revoke]])
    rows_at = np.concatenate([at, late_at, rev_at])
    status = np.concatenate(
        [np.zeros(len(cust) + len(late_c), np.int64), np.ones(int(revoke.sum()), np.int64)]
    )
    src_code = np.concatenate(
        [
            np.where(acc.source[cust] == 1, 1, np.where(chan == 2, 2, 0)),
            np.full(len(late_c), 3),
            4 + chan[revoke],
        ]
    )
    keep = rows_at <= end_sec
    rows_c, rows_ch, rows_at, status, src_code = (
        x[keep] for x in (rows_c, rows_ch, rows_at, status, src_code)
    )
    order = np.lexsort((rows_ch, rows_c, rows_at))
    rows_c, rows_ch, rows_at, status, src_code = (
        x[order] for x in (rows_c, rows_ch, rows_at, status, src_code)
    )
    sources = pa.array(
        [
            "signup_form",
            "checkout",
            "app",
            "preference_centre",
            "unsubscribe_link",
            "sms_stop",
            "app_settings",
        ]
    )
    table = pa.table(
        {
            "customer_id": acc.ids.take(pa.array(rows_c)),
            "channel": pa.array(["email", "sms", "push"]).take(pa.array(rows_ch)),
            "status": pa.array(["granted", "revoked"]).take(pa.array(status)),
            "consented_at": ctx.ts.utc(rows_at),
            "source": sources.take(pa.array(src_code)),
        }
    )
    return _append_bad_consents(rng, ctx, table, bad)


def _append_bad_consents(
    rng: np.random.Generator, ctx: _Context, table: pa.Table, bad: _Malformed
) -> pa.Table:
    """Consent rows for customers that exist nowhere, and rows with unparseable timestamps."""
    n = table.num_rows
    extra = int(rng.binomial(n, CONSENT_MALFORMED_RATE)) if n else 0
    if not extra:
        return table
    copies = table.take(pa.array(rng.integers(0, n, extra))).to_pydict()
    for j in range(extra):
        if rng.random() < 0.75:
            value = f"cus_{10**ctx.id_width + ctx.unknown_counter}"
            ctx.unknown_counter += 1
            copies["customer_id"][j] = value
            bad.add(n + j, "customer_id", "unknown_customer", value)
        else:
            value = BAD_TIMESTAMPS[int(rng.integers(0, len(BAD_TIMESTAMPS)))]
            copies["consented_at"][j] = value
            bad.add(n + j, "consented_at", "bad_timestamp", value)
    return pa.concat_tables([table, pa.table(copies, schema=table.schema)])


def _orders_table(
    rng: np.random.Generator, ctx: _Context, acc: _Accounts, orders: _Orders, sel: np.ndarray, bad: _Malformed
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Landing rows of the selected (in-window) orders plus extra malformed rows.

    Returns the table, the nominal seconds of each row (for partitioning/sorting) and the order ids
    (numbers) of the valid rows.
    """
    m = len(sel)
    numbers = ctx.order_counter + 1 + np.arange(m)
    ctx.order_counter += m
    cust = orders.cust[sel]
    email_kind = orders.email_kind[sel]
    emails = [
        None if k < 0 else (acc.email[c] if k == 5 else _typed_variant(acc.email[c], int(k)))
        for c, k in zip(cust.tolist(), email_kind.tolist(), strict=True)
    ]
    codes = pa.array(orders.codes)
    cols = {
        "order_id": _number_ids("ord_", numbers, 8).to_pylist(),
        "customer_id": acc.ids.take(pa.array(cust)).to_pylist(),
        "ordered_at": ctx.ts.utc(orders.sec[sel]).to_pylist(),
        "amount": _money_text(orders.amount_cents[sel]).to_pylist(),
        "currency": [CURRENCY] * m,
        "status": pa.array(["completed", "cancelled", "refunded"])
        .take(pa.array(orders.status[sel]))
        .to_pylist(),
        "discount_amount": (orders.discount_cents[sel] / 100.0).tolist(),
        "coupon_code": _take(codes, orders.coupon[sel]).to_pylist(),
        "channel": pa.array(CHANNELS).take(pa.array(orders.channel[sel])).to_pylist(),
        "email": emails,
    }
    nominal = list(orders.sec[sel])
    extra = int(rng.binomial(m, ORDER_MALFORMED_RATE)) if m else 0
    for src in rng.integers(0, max(m, 1), extra):
        _add_bad_order(rng, ctx, cols, int(src), bad)
        nominal.append(orders.sec[sel][src])
    schema = pa.schema([(k, pa.float64() if k == "discount_amount" else pa.string()) for k in cols])
    return pa.table(cols, schema=schema), np.array(nominal, dtype=np.int64), numbers


_BAD_ORDER_KINDS = (
    ("ordered_at", "bad_timestamp"),
    ("amount", "non_numeric_amount"),
    ("amount", "negative_amount"),
    ("customer_id", "missing_id"),
    ("order_id", "missing_id"),
)


def _add_bad_order(
    rng: np.random.Generator, ctx: _Context, cols: dict[str, list], src: int, bad: _Malformed
) -> None:
    """Append a copy of order row ``src`` with a new id and one corrupted field."""
    row = len(cols["order_id"])
    for values in cols.values():
        values.append(values[src])
    ctx.order_counter += 1
    cols["order_id"][row] = f"ord_{ctx.order_counter:08d}"
    kind = int(_pick(rng.random(1), (0.35, 0.2, 0.2, 0.15, 0.1))[0])
    field_name, label = _BAD_ORDER_KINDS[kind]
    value = (
        BAD_TIMESTAMPS[int(rng.integers(0, len(BAD_TIMESTAMPS)))],
        NON_NUMERIC_AMOUNTS[int(rng.integers(0, len(NON_NUMERIC_AMOUNTS)))],
        "-" + str(cols["amount"][src]),
        "",
        "",
    )[kind]
    cols[field_name][row] = value or None
    bad.add(row, field_name, label, value)


def _items_table(
    rng: np.random.Generator,
    ctx: _Context,
    items: dict[str, np.ndarray],
    order_numbers: np.ndarray,
    order_secs: np.ndarray,
    bad: _Malformed,
) -> tuple[pa.Table, np.ndarray]:
    """Order lines plus a few lines for orders that exist nowhere."""
    pos = items["order_pos"]
    n = len(pos)
    extra = int(rng.binomial(n, ITEM_UNKNOWN_ORDER_RATE)) if n else 0
    src = rng.integers(0, max(n, 1), extra)
    order_ids = _number_ids("ord_", order_numbers[pos], 8).to_pylist()
    for j in range(extra):
        value = f"ord_{10**11 + ctx.unknown_counter}"
        ctx.unknown_counter += 1
        order_ids.append(value)
        bad.add(n + j, "order_id", "unknown_order", value)
    take = np.concatenate([np.arange(n), src]).astype(np.int64)
    table = pa.table(
        {
            "order_id": pa.array(order_ids, type=pa.string()),
            "product_id": ctx.cat.ids.take(pa.array(items["product"][take])),
            "quantity": pa.array(items["quantity"][take], type=pa.int64()),
            "unit_price": pa.array(items["unit_cents"][take] / 100.0, type=pa.float64()),
        }
    )
    return table, order_secs[pos][take]


def _events_table(
    rng: np.random.Generator,
    ctx: _Context,
    plan: dict[str, np.ndarray],
    ev: _EventArrays,
    acc: _Accounts,
    n_visitors: int,
) -> pa.Table:
    """Event rows with string columns (nulls are omitted from the JSON lines)."""
    s = ev.session
    cust = plan["cust"][s]
    app = _session_is_app(plan, acc)
    web_session = ~app
    combos, utm = _utm(rng, plan, web_session, ctx.cal)
    ses_utm = np.where(ev.landing, utm[s], -1)
    anon_code = np.where(
        plan["cust"] >= 0,
        acc.gidx[np.maximum(plan["cust"], 0)] * 2 + plan["device"] - 1,
        2 * ctx.n_accounts + ctx.visitor_counter + plan["visitor"],
    )
    ctx.visitor_counter += n_visitors
    n_sessions, n_events = len(plan["cust"]), len(s)
    session_ids = _hex_ids("s_", _hash_ids(ctx.seed, H_SESSION, ctx.session_counter + np.arange(n_sessions)))
    ctx.session_counter += n_sessions
    event_ids = _hex_ids("evt_", _hash_ids(ctx.seed, H_EVENT, ctx.event_counter + np.arange(n_events)))
    ctx.event_counter += n_events
    anon = _hex_ids("anon_", _hash_ids(ctx.seed, H_ANON, anon_code))
    product = _take(ctx.cat.ids, ev.product)
    return pa.table(
        {
            "event_id": event_ids,
            "event_type": pa.array(EVENT_TYPES).take(pa.array(ev.etype)),
            "occurred_at": ctx.ts.utc(ev.sec),
            "anonymous_id": anon.take(pa.array(s)),
            "customer_id": _take(acc.ids, np.where(ev.known & (cust >= 0), cust, -1)),
            "session_id": session_ids.take(pa.array(s)),
            "product_id": product,
            "url": _urls(ev, app[s], product, ses_utm, combos, ctx.cat),
            "utm_source": _take(pa.array([c[0] for c in combos]), ses_utm),
            "utm_medium": _take(pa.array([c[1] for c in combos]), ses_utm),
            "utm_campaign": _take(pa.array([c[2] for c in combos]), ses_utm),
        }
    )


def _urls(
    ev: _EventArrays,
    app: np.ndarray,
    product: pa.Array,
    utm: np.ndarray,
    combos: list[tuple[str, str, str]],
    cat: _Catalogue,
) -> pa.Array:
    """Page URLs of web events (null in the app); the landing URL carries the utm query string."""
    paths = pa.array([SHOP_URL + (p or "") for p in EVENT_PATHS])
    base = paths.take(pa.array(ev.etype))
    is_product = pc.is_valid(product)
    base = pc.if_else(is_product, pc.binary_join_element_wise(base, pc.fill_null(product, ""), ""), base)
    query = pa.array([f"?utm_source={s}&utm_medium={m}&utm_campaign={c}" for s, m, c in combos] + [""])
    q = query.take(pa.array(np.where(utm >= 0, utm, len(combos))))
    url = pc.binary_join_element_wise(base, q, "")
    return pc.if_else(pa.array(app), pa.nulls(len(app), type=pa.string()), url)


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def _jsonl_bytes(table: pa.Table) -> bytes:
    """JSON Lines with null fields omitted (values are plain ASCII ids, urls and timestamps)."""
    pieces = [
        pc.binary_join_element_wise(f'"{name}":"', table.column(name).combine_chunks(), '"', "")
        for name in table.column_names
    ]
    body = pc.binary_join_element_wise(*pieces, ",", null_handling="skip")
    lines = pc.binary_join_element_wise("{", body, "}\n", "")
    if len(lines) == 0:
        return b""
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return bytes(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _write_jsonl(table: pa.Table, path: Path) -> None:
    path.write_bytes(_jsonl_bytes(table))


def _write_monthly(
    ctx: _Context,
    table: pa.Table,
    secs: np.ndarray,
    rel_dir: str,
    chunk: int,
    ext: str,
    writer: Callable[[pa.Table, Path], None],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Write ``table`` as ``rel_dir/month=YYYY-MM/part-<chunk>.<ext>`` sorted by time.

    Returns the relative file names, and per input row the index of its file and its 1-based row.
    """
    month = ctx.ts.month(secs)
    order = np.lexsort((np.arange(len(secs)), secs, month))
    sorted_month = month[order]
    cuts = np.flatnonzero(np.diff(sorted_month)) + 1
    bounds = np.concatenate([[0], cuts, [len(order)]]).astype(np.int64)
    files, file_of, row_of = [], np.zeros(len(secs), np.int64), np.zeros(len(secs), np.int64)
    for g in range(len(bounds) - 1):
        lo, hi = bounds[g], bounds[g + 1]
        if hi <= lo:
            continue
        rel = f"{rel_dir}/month={ctx.ts.month_names[sorted_month[lo]]}/part-{chunk:05d}.{ext}"
        path = ctx.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(table.take(pa.array(order[lo:hi])), path)
        file_of[order[lo:hi]] = len(files)
        row_of[order[lo:hi]] = np.arange(1, hi - lo + 1)
        files.append(rel)
    return files, file_of, row_of


def _record_malformed(
    ctx: _Context,
    entity: str,
    bad: _Malformed,
    files: list[str],
    file_of: np.ndarray | None,
    row_of: np.ndarray | None,
) -> None:
    for r, f, k, v in zip(bad.rows, bad.fields, bad.kinds, bad.values, strict=True):
        file = files[0] if file_of is None else files[file_of[r]]
        row = r + 1 if row_of is None else int(row_of[r])
        ctx.malformed_rows.append(
            {"entity": entity, "file": file, "row": row, "field": f, "kind": k, "value": v}
        )


def _write_csv(ctx: _Context, table: pa.Table, rel: str) -> None:
    path = ctx.out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LeadSignals:
    """Planted intent events of one chunk: per signal the account, its slot (0..3) and time in
    seconds since the window start, and whether it is a webinar registration; per account whether
    it is a hot lead (its signals precede its first purchase)."""

    cust: np.ndarray
    slot: np.ndarray
    sec: np.ndarray
    webinar: np.ndarray
    hot: np.ndarray


def _lead_signals(ctx: _Context, acc: _Accounts, orders: _Orders) -> _LeadSignals:
    """The planted lead signals: a pure function of (seed, account index) and the simulated orders."""
    gidx, n, end = acc.gidx, acc.n, float(ctx.cal.days)
    first = np.full(n, _INF)
    np.minimum.at(first, orders.cust[orders.completed], orders.t[orders.completed])
    u = ctx.ident.u
    hot = (
        np.isfinite(first) & (first - acc.signup_t >= LEAD_MIN_LEAD_DAYS) & (u(H_LEAD, gidx) < LEAD_HOT_RATE)
    )
    count = np.where(hot, 1 + np.minimum((u(H_LEAD + 1, gidx) * 3).astype(np.int64), 2), 0)
    noise = ~hot & (u(H_LEAD + 5, gidx) < LEAD_NOISE_RATE)
    cust, slot, t = [], [], []
    lo, hi = LEAD_SIGNAL_DAYS
    for j in range(3):
        k = np.flatnonzero(count > j)
        cust.append(k)
        slot.append(np.full(len(k), j))
        t.append(first[k] - (lo + (hi - lo) * u(H_LEAD + 10 + j, gidx[k])))
    k = np.flatnonzero(noise)
    stop = np.minimum(first[k], end)
    cust.append(k)
    slot.append(np.full(len(k), 3))
    t.append(acc.signup_t[k] + (stop - acc.signup_t[k]) * u(H_LEAD + 20, gidx[k]))
    cust_a, slot_a, t_a = np.concatenate(cust), np.concatenate(slot), np.concatenate(t)
    keep = (t_a > acc.signup_t[cust_a] + 0.01) & (t_a >= 0) & (t_a < end)
    cust_a, slot_a, t_a = cust_a[keep], slot_a[keep], t_a[keep]
    webinar = u(H_LEAD + 30, gidx[cust_a] * 4 + slot_a) >= 0.55
    return _LeadSignals(cust_a, slot_a, np.floor(t_a * SECONDS_PER_DAY).astype(np.int64), webinar, hot)


def _write_lead_signals(ctx: _Context, acc: _Accounts, orders: _Orders, chunk: int) -> None:
    """The planted signals as known customers' events, in files of their own
    (``events/month=YYYY-MM/leads-<chunk>.jsonl``), so the other event files stay as they were."""
    sig = _lead_signals(ctx, acc, orders)
    if not len(sig.cust):
        return
    gidx = acc.gidx[sig.cust]
    key = gidx * 4 + sig.slot
    urls = pa.array([SHOP_URL + path for path in LEAD_PATHS])
    table = pa.table(
        {
            "event_id": _hex_ids("evt_", _hash_ids(ctx.seed, H_LEAD + 40, key)),
            "event_type": pa.array(np.where(sig.webinar, "form_submit", "page_view")),
            "occurred_at": ctx.ts.utc(sig.sec),
            "anonymous_id": _hex_ids("anon_", _hash_ids(ctx.seed, H_ANON, gidx * 2)),
            "customer_id": acc.ids.take(pa.array(sig.cust)),
            "session_id": _hex_ids("s_", _hash_ids(ctx.seed, H_LEAD + 41, key)),
            "url": urls.take(pa.array(sig.webinar.astype(np.int64))),
        }
    )
    month = ctx.ts.month(sig.sec)
    for m in np.unique(month):
        rows = np.flatnonzero(month == m)
        rows = rows[np.lexsort((rows, sig.sec[rows]))]
        path = ctx.out_dir / EVENTS.path / f"month={ctx.ts.month_names[m]}" / f"leads-{chunk:05d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_jsonl(table.take(pa.array(rows)), path)
    ctx.counts["events"] += table.num_rows  # rows of the landing zone, as the other events
    ctx.counts["lead_signals"] = ctx.counts.get("lead_signals", 0) + table.num_rows


def _truth_table(ctx: _Context, acc: _Accounts, pur: _Purchases, orders: _Orders) -> pa.Table:
    """One row per account: latent parameters and realised outcomes in and after the window."""
    n, end = acc.n, float(ctx.cal.days)
    c, t = orders.cust, orders.t
    done = orders.completed
    in_win, future = t < end, t >= end
    recent = done & in_win & (t >= end - 365)

    def per(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-account count (int64) or sum of ``weights`` (float64) over the masked orders."""
        if weights is None:
            return np.bincount(c[mask], minlength=n).astype(np.int64)
        return np.bincount(c[mask], weights=weights[mask], minlength=n).astype(np.float64)

    first = np.full(n, _INF)
    last = np.full(n, -_INF)
    np.minimum.at(first, c[done & in_win], t[done & in_win])
    np.maximum.at(last, c[done & in_win], t[done & in_win])
    purchases_next = per(done & future).astype(np.int64)
    fmt = ctx.ts.utc

    def when(x: np.ndarray) -> pa.Array:
        ok = np.isfinite(x)
        return pc.if_else(
            pa.array(ok), fmt(np.floor(np.where(ok, x, 0) * SECONDS_PER_DAY)), pa.nulls(n, type=pa.string())
        )

    dup_of = np.where(acc.is_dup, acc.dup_of + 1, -1)
    signals = _lead_signals(ctx, acc, orders)
    return pa.table(
        {
            "customer_id": acc.ids,
            "duplicate_of": _dup_ids(ctx, dup_of),
            "persona": pa.array([PERSONA_NAMES[p] for p in acc.persona]),
            "purchase_rate_per_year": pa.array(np.round(acc.lam, 4)),
            "dropout_probability": pa.array(np.round(acc.p, 4), mask=np.isnan(acc.p)),
            "alive_at_end": pa.array(pur.alive_end),
            "reactivated": pa.array(pur.reactivated),
            "orders_in_window": pa.array(per(in_win).astype(np.int64)),
            "purchases_in_window": pa.array(per(done & in_win).astype(np.int64)),
            "revenue_in_window": pa.array(np.round(per(done & in_win, orders.amount_cents / 100.0), 2)),
            "purchases_next_90d": pa.array(purchases_next),
            "revenue_next_90d": pa.array(np.round(per(done & future, orders.amount_cents / 100.0), 2)),
            "churned_next_90d": pa.array((per(recent) > 0) & (purchases_next == 0)),
            "signup_at": fmt(acc.signup_sec),
            "first_purchase_at": when(first),
            "last_purchase_at": when(last),
            "source": pa.array([SOURCES[s] for s in acc.source]),
            "country": pa.array([COUNTRY_CODES[k] for k in acc.identity.country]),
            "email_normalised": pa.array(acc.email),
            "phone_e164": pa.array(acc.identity.phone_e164, type=pa.string()),
            "mean_order_value": pa.array(np.round(acc.spend, 2)),
            "coupon_propensity": pa.array(np.round(acc.coupon, 4)),
            "lead_hot": pa.array(signals.hot),
            "lead_signals": pa.array(np.bincount(signals.cust, minlength=n).astype(np.int64)),
        }
    )


def _dup_ids(ctx: _Context, dup_of: np.ndarray) -> pa.Array:
    ids = _number_ids("cus_", np.maximum(dup_of, 1), ctx.id_width)
    return pc.if_else(pa.array(dup_of > 0), ids, pa.nulls(len(dup_of), type=pa.string()))


# --------------------------------------------------------------------------------------------------
# Staff, owners and CRM lead stages
# --------------------------------------------------------------------------------------------------


@dataclass
class _Owners:
    """Per account of a chunk: whether a rep owns it, which (index into DEMO_STAFF), since when (days
    since the window start), whether the link is the contact's owner_id, and a second rep or -1."""

    has: np.ndarray
    first: np.ndarray
    linked_t: np.ndarray
    on_contact: np.ndarray
    second: np.ndarray
    second_t: np.ndarray


def _first_purchase(acc: _Accounts, orders: _Orders) -> np.ndarray:
    first = np.full(acc.n, _INF)
    np.minimum.at(first, orders.cust[orders.completed], orders.t[orders.completed])
    return first


def _plan_owners(ctx: _Context, acc: _Accounts, orders: _Orders) -> _Owners:
    """Owners of one chunk's accounts: a pure function of (seed, account index) and the orders."""
    u, gidx, end = ctx.ident.u, acc.gidx, float(ctx.cal.days)
    lead = ~(_first_purchase(acc, orders) < end)
    rate = np.where(lead, STAFF_LEAD_OWNER_RATE, STAFF_BUYER_OWNER_RATE)
    start = np.clip(acc.signup_t, 0.0, end - 1.0)
    has = (u(H_STAFF, gidx) < rate) & (acc.signup_t < end - 1.0)
    reps = len(DEMO_STAFF) - STAFF_REPS
    first = reps + np.minimum((u(H_STAFF + 3, gidx) * STAFF_REPS).astype(np.int64), STAFF_REPS - 1)
    offset = 1 + np.minimum((u(H_STAFF + 4, gidx) * (STAFF_REPS - 1)).astype(np.int64), STAFF_REPS - 2)
    two = has & (u(H_STAFF + 2, gidx) < STAFF_SECOND_OWNER_RATE)
    linked = start + np.minimum(end - start, 30.0) * u(H_STAFF + 5, gidx) * 0.99
    return _Owners(
        has,
        first,
        linked,
        has & (u(H_STAFF + 1, gidx) < STAFF_CONTACT_OWNER_RATE),
        np.where(two, reps + (first - reps + offset) % STAFF_REPS, -1),
        linked + (end - linked) * u(H_STAFF + 6, gidx) * 0.99,
    )


def _staff_handle(staff_id: str, name: str, kind: str) -> str:
    if kind == "webhook":
        return STAFF_SINK + staff_id
    return f"{_ascii_slug(name.split()[0])}@{STAFF_DOMAIN}"


def _write_staff(out_dir: Path) -> int:
    rows = [
        {
            "staff_id": sid,
            "name": name,
            "email": f"{_ascii_slug(name.split()[0])}@{STAFF_DOMAIN}",
            "manager_id": manager,
            "handle": _staff_handle(sid, name, kind),
            "team": team,
            "timezone": zone,
            "active": "true" if active else "false",
        }
        for sid, name, manager, team, zone, active, kind in DEMO_STAFF
    ]
    path = out_dir / STAFF.path / "staff.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.Table.from_pylist(rows), path)
    return len(rows)


def _write_owners(ctx: _Context, acc: _Accounts, owners: _Owners, chunk: int) -> None:
    """The crm/customer_owners rows of one chunk: first links not on the contact, second links."""
    k1 = np.flatnonzero(owners.has & ~owners.on_contact)
    k2 = np.flatnonzero(owners.second >= 0)
    cust = np.concatenate([k1, k2])
    staff = np.concatenate([owners.first[k1], owners.second[k2]])
    when = np.concatenate([owners.linked_t[k1], owners.second_t[k2]])
    if not len(cust):
        return
    order = np.lexsort((staff, cust))
    cust, staff, when = cust[order], staff[order], when[order]
    table = pa.table(
        {
            "customer_id": acc.ids.take(pa.array(cust, type=pa.int64())),
            "staff_id": pa.array([DEMO_STAFF[s][0] for s in staff], type=pa.string()),
            "linked_at": ctx.ts.utc(np.floor(when * SECONDS_PER_DAY).astype(np.int64)),
        }
    )
    path = ctx.out_dir / CUSTOMER_OWNERS.path / f"part-{chunk:05d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)
    ctx.counts["customer_owners"] = ctx.counts.get("customer_owners", 0) + table.num_rows
    ctx.counts["contact_owners"] = ctx.counts.get("contact_owners", 0) + int(owners.on_contact.sum())


def _write_lead_status(ctx: _Context, acc: _Accounts, orders: _Orders, owners: _Owners, chunk: int) -> None:
    """CRM stages of the leads with planted signals and no purchase in the window: sales_accepted 1 to
    5 days after the last signal, then an opportunity 2 to 10 days later, then a deal or lost 5 to 20
    days later; only what happened before the window's end. Set by the owner, else by no one."""
    u, end = ctx.ident.u, float(ctx.cal.days)
    sig = _lead_signals(ctx, acc, orders)
    last = np.full(acc.n, -_INF)
    np.maximum.at(last, sig.cust, sig.sec / SECONDS_PER_DAY)
    gidx = acc.gidx
    lead = ~(_first_purchase(acc, orders) < end)
    accepted = np.isfinite(last) & lead & (u(H_STAFF + 10, gidx) < STAFF_ACCEPT_RATE)
    t1 = last + 1 + 4 * u(H_STAFF + 11, gidx)
    t2 = t1 + 2 + 8 * u(H_STAFF + 12, gidx)
    t3 = t2 + 5 + 15 * u(H_STAFF + 13, gidx)
    opp = accepted & (u(H_STAFF + 14, gidx) < STAFF_OPPORTUNITY_RATE)
    close = u(H_STAFF + 15, gidx)
    final = np.where(
        close < STAFF_DEAL_RATE, "deal", np.where(close < STAFF_DEAL_RATE + STAFF_LOST_RATE, "lost", "")
    )
    rows: list[tuple[int, float, str]] = []
    for k in np.flatnonzero(accepted):
        steps = [(t1[k], "sales_accepted")]
        if opp[k]:
            steps.append((t2[k], "opportunity"))
            if final[k]:
                steps.append((t3[k], str(final[k])))
        rows += [(int(k), t, stage) for t, stage in steps if t < end]
    if not rows:
        return
    cust = np.array([r[0] for r in rows], dtype=np.int64)
    secs = np.floor(np.array([r[1] for r in rows]) * SECONDS_PER_DAY).astype(np.int64)
    table = pa.table(
        {
            "customer_id": acc.ids.take(pa.array(cust)),
            "stage": pa.array([r[2] for r in rows], type=pa.string()),
            "changed_at": ctx.ts.utc(secs),
            "staff_id": pa.array(
                [DEMO_STAFF[owners.first[k]][0] if owners.has[k] else None for k in cust], type=pa.string()
            ),
        }
    )
    path = ctx.out_dir / LEAD_STATUS.path / f"part-{chunk:05d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)
    ctx.counts["lead_status"] = ctx.counts.get("lead_status", 0) + table.num_rows


# --------------------------------------------------------------------------------------------------
# Chunk driver
# --------------------------------------------------------------------------------------------------


def _generate_chunk(
    ctx: _Context,
    chunk: int,
    lo: int,
    hi: int,
    truth: pq.ParquetWriter | None,
) -> pq.ParquetWriter:
    rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, chunk]))
    acc, shared = _build_accounts(rng, ctx.ident, lo, hi, ctx.id_width)
    pur = _simulate_purchases(rng, acc, ctx.cal)
    orders = _order_details(rng, acc, pur, ctx.cal)
    owners = _plan_owners(ctx, acc, orders)
    _write_crm(rng, ctx, acc, chunk, owners)
    window = np.flatnonzero(orders.in_window)
    order_numbers = _write_orders(rng, ctx, acc, orders, window, chunk)
    items = _order_items(rng, acc, orders, window, ctx.cat)
    _write_items(rng, ctx, items, order_numbers, orders.sec[window], chunk)
    item_start = np.full(len(orders.cust), -1, dtype=np.int64)
    item_start[window] = np.concatenate([[0], np.cumsum(orders.n_lines[window])[:-1]]).astype(np.int64)
    _write_events(rng, ctx, acc, pur, orders, items, item_start, chunk)
    _write_lead_signals(ctx, acc, orders, chunk)
    _write_owners(ctx, acc, owners, chunk)
    _write_lead_status(ctx, acc, orders, owners, chunk)
    for k in np.flatnonzero(acc.is_dup):
        ctx.duplicate_rows.append(
            {
                "customer_id": acc.ids[k].as_py(),
                "duplicate_of": f"cus_{acc.dup_of[k] + 1:0{ctx.id_width}d}",
                "shared": ("", "email", "phone", "both")[shared[k]],
            }
        )
    ctx.counts["duplicates"] += int(acc.is_dup.sum())
    table = _truth_table(ctx, acc, pur, orders)
    if truth is None:
        truth = pq.ParquetWriter(
            ctx.out_dir / TRUTH_DIR / "customers.parquet", table.schema, compression="zstd"
        )
    truth.write_table(table)
    return truth


def _write_crm(rng: np.random.Generator, ctx: _Context, acc: _Accounts, chunk: int, owners: _Owners) -> None:
    bad = _Malformed()
    contacts = _contacts_table(rng, ctx, acc, bad, owners)
    rel = f"{CONTACTS.path}/part-{chunk:05d}.csv"
    _write_csv(ctx, contacts, rel)
    _record_malformed(ctx, CONTACTS.name, bad, [rel], None, None)
    ctx.counts["contacts"] += contacts.num_rows
    bad = _Malformed()
    consents = _consents_table(rng, ctx, acc, bad)
    rel = f"{CONSENTS.path}/part-{chunk:05d}.csv"
    _write_csv(ctx, consents, rel)
    _record_malformed(ctx, CONSENTS.name, bad, [rel], None, None)
    ctx.counts["consents"] += consents.num_rows


def _write_orders(
    rng: np.random.Generator, ctx: _Context, acc: _Accounts, orders: _Orders, window: np.ndarray, chunk: int
) -> np.ndarray:
    bad = _Malformed()
    table, secs, numbers = _orders_table(rng, ctx, acc, orders, window, bad)
    files, file_of, row_of = _write_monthly(ctx, table, secs, ORDERS.path, chunk, "parquet", _write_parquet)
    _record_malformed(ctx, ORDERS.name, bad, files, file_of, row_of)
    ctx.counts["orders"] += table.num_rows
    return numbers


def _write_items(
    rng: np.random.Generator,
    ctx: _Context,
    items: dict[str, np.ndarray],
    order_numbers: np.ndarray,
    order_secs: np.ndarray,
    chunk: int,
) -> None:
    bad = _Malformed()
    table, secs = _items_table(rng, ctx, items, order_numbers, order_secs, bad)
    files, file_of, row_of = _write_monthly(
        ctx, table, secs, ORDER_ITEMS.path, chunk, "parquet", _write_parquet
    )
    _record_malformed(ctx, ORDER_ITEMS.name, bad, files, file_of, row_of)
    ctx.counts["order_items"] += table.num_rows


def _write_events(
    rng: np.random.Generator,
    ctx: _Context,
    acc: _Accounts,
    pur: _Purchases,
    orders: _Orders,
    items: dict[str, np.ndarray],
    item_start: np.ndarray,
    chunk: int,
) -> None:
    n_visitors = int(round(ANONYMOUS_VISITORS_PER_CUSTOMER * acc.n))
    plan = _plan_sessions(rng, acc, pur, orders, ctx.cal, n_visitors)
    mode, auth = _identity_modes(plan, acc)
    ev = _expand_events(rng, plan, mode, auth, acc, orders, items, item_start, ctx.cat)
    keep = (ev.sec >= 0) & (ev.sec < ctx.cal.days * SECONDS_PER_DAY)
    ev = _EventArrays(*(getattr(ev, f)[keep] for f in ev.__dataclass_fields__))
    table = _events_table(rng, ctx, plan, ev, acc, n_visitors)
    _write_monthly(ctx, table, ev.sec, EVENTS.path, chunk, "jsonl", _write_jsonl)
    ctx.counts["events"] += table.num_rows
    recent = ev.sec >= (ctx.cal.days - RECENT_DAYS) * SECONDS_PER_DAY
    ctx.recent["signups"] += int((recent & (ev.etype == EV_SIGNUP)).sum())
    left = recent & (ev.etype == EV_CHECKOUT) & ev.known & (plan["kind"][ev.session] == S_ABANDON)
    ctx.recent["abandoned_checkouts"] += int(left.sum())


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
_OWNED_DIRS = (
    STAFF.path,
    CUSTOMER_OWNERS.path,
    LEAD_STATUS.path,
    CONTACTS.path,
    CONSENTS.path,
    PRODUCTS.path,
    ORDERS.path,
    ORDER_ITEMS.path,
    EVENTS.path,
    TRUTH_DIR,
)


def _prepare_out_dir(out_dir: Path) -> None:
    """Clear a previous demo run; refuse to write into entity folders that hold anything else."""
    previous = (out_dir / TRUTH_DIR / "demo.json").is_file()
    for rel in _OWNED_DIRS:
        path = out_dir / rel
        if path.exists() and any(path.iterdir()):
            if not previous:
                raise FileExistsError(f"{path} is not empty and {out_dir} holds no previous demo data")
            shutil.rmtree(path)
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)


def _validate(customers: int, days: int, seed: int, chunk_size: int) -> None:
    if customers < 1 or days < 1 or chunk_size < 1:
        raise ValueError("customers, days and chunk_size must be positive")
    if seed < 0:
        raise ValueError("seed must not be negative")
    if customers >= PHONE_SUB_SPACE:
        raise ValueError(f"at most {PHONE_SUB_SPACE - 1} customers are supported")


def generate_demo_data(
    out_dir: Path,
    *,
    customers: int = 2000,
    days: int = 730,
    seed: int = 42,
    end_date: dt.date | None = None,
    chunk_size: int = 20_000,
) -> DemoDataSummary:
    """Write a realistic landing zone for ``customers`` accounts over ``days`` days ending ``end_date``.

    The window is ``[end_date - days + 1, end_date]`` (UTC; ``end_date`` defaults to ``DEFAULT_END_DATE``).
    ``customers`` counts accounts, the ~3% planted duplicate accounts included. Output is byte-identical
    for the same arguments. A previous demo run in ``out_dir`` (recognised by ``_truth/demo.json``) is
    replaced; non-empty entity folders without that marker raise ``FileExistsError``.

    Landing zone (paths relative to ``out_dir``; ``NNNNN`` is the chunk number):

    * ``crm/contacts/part-NNNNN.csv`` and ``crm/consents/part-NNNNN.csv``: every contract column.
      ``created_at`` is ``2025-03-01T10:04:05Z`` or, for ~30% of rows, local time with the offset of the
      contact's time zone (``2025-03-01T11:04:05+01:00``). Phones are mixed E.164, international,
      ``00``-prefixed and national formats that the dbt phone rules normalise.
    * ``commerce/products/products.csv``: 200 products, ``price`` as plain decimal text.
    * ``commerce/orders/month=YYYY-MM/part-NNNNN.parquet``: all columns strings except
      ``discount_amount`` (float64, 0.0 without coupon). ``amount`` is a string (``"42.50"``) so that
      malformed amounts can be planted; currency is always EUR.
    * ``commerce/order_items/month=YYYY-MM/part-NNNNN.parquet``: ``quantity`` int64, ``unit_price``
      float64.
    * ``events/month=YYYY-MM/part-NNNNN.jsonl``: one object per line, empty fields omitted; utm fields
      and the utm query string sit on the first event of a web session; app events have no ``url``.
    * ``events/month=YYYY-MM/leads-NNNNN.jsonl``: the planted lead signals (pricing page views,
      webinar registrations as ``form_submit`` on ``/webinar``) of known customers; see ``H_LEAD``.

    Ground truth in ``out_dir/_truth``: ``customers.parquet`` (one row per account: persona, latent
    rate and dropout probability, ``alive_at_end`` = a buyer not in a dropped-out state at the end of
    the window (prospects: false), ``reactivated`` = came back within the window, ``orders_in_window``
    = valid landing orders of any status, ``purchases_*``/``revenue_*`` = completed orders only,
    ``*_next_90d`` from the same process simulated 90 days past the window (not in the landing zone),
    ``churned_next_90d`` = a completed order in the last 365 days of the window and none in the next
    90, ``lead_hot`` = a planted hot lead whose signals precede its first purchase, ``lead_signals`` = its
    planted signals), ``duplicates.csv``, ``malformed.csv`` (1-based data rows) and ``demo.json`` (the arguments,
    the counts, and under ``recent`` the last days' sale: its days, rates, the ``signups`` events and
    the ``abandoned_checkouts``: checkout_started events of known customers that no order follows).
    """
    _validate(customers, days, seed, chunk_size)
    out_dir = Path(out_dir)
    end_date = end_date or DEFAULT_END_DATE
    start_date = end_date - dt.timedelta(days=days - 1)
    _prepare_out_dir(out_dir)
    cal = _Calendar(start_date, days)
    ctx = _Context(
        seed,
        customers,
        out_dir,
        cal,
        _Timestamps(start_date, cal.horizon),
        _build_catalogue(seed),
        _IdentityFactory(seed, customers, cal),
        max(7, len(str(customers))),
        _tz_offsets(start_date, cal.horizon),
    )
    products = _write_products(ctx.cat, out_dir)
    ctx.counts["staff"] = _write_staff(out_dir)
    truth: pq.ParquetWriter | None = None
    for chunk, lo in enumerate(range(0, customers, chunk_size)):
        truth = _generate_chunk(ctx, chunk, lo, min(lo + chunk_size, customers), truth)
    if truth is not None:
        truth.close()
    ctx.counts["malformed"] = len(ctx.malformed_rows)
    _write_truth_files(ctx, customers, days, seed, end_date, chunk_size, products)
    c = ctx.counts
    return DemoDataSummary(
        customers,
        c["contacts"],
        c["orders"],
        c["order_items"],
        c["events"],
        c["consents"],
        c["duplicates"],
        c["malformed"],
        start_date,
        end_date,
        out_dir,
        out_dir / TRUTH_DIR,
    )


def _write_truth_files(
    ctx: _Context, customers: int, days: int, seed: int, end_date: dt.date, chunk_size: int, products: int
) -> None:
    truth = ctx.out_dir / TRUTH_DIR
    malformed = pd.DataFrame(ctx.malformed_rows, columns=["entity", "file", "row", "field", "kind", "value"])
    malformed.to_csv(truth / "malformed.csv", index=False)
    pd.DataFrame(ctx.duplicate_rows, columns=["customer_id", "duplicate_of", "shared"]).to_csv(
        truth / "duplicates.csv", index=False
    )
    meta = {
        "customers": customers,
        "days": days,
        "seed": seed,
        "chunk_size": chunk_size,
        "start_date": ctx.cal.start.isoformat(),
        "end_date": end_date.isoformat(),
        "future_days": FUTURE_DAYS,
        "black_friday_weeks": ctx.cal.black_friday_weeks(),
        "counts": {**ctx.counts, "products": products, "customers": customers},
        "currency": CURRENCY,
        "personas": {name: spec["share"] for name, spec in PERSONAS.items()},
        "recent": {
            "first_day": (end_date - dt.timedelta(days=min(RECENT_DAYS, days) - 1)).isoformat(),
            "last_day": end_date.isoformat(),
            "signup_drive_rate": SIGNUP_DRIVE_RATE,
            "abandon_per_year": RECENT_ABANDON_PER_YEAR,
            **ctx.recent,
        },
    }
    (truth / "demo.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
