"""The bundled sample database: a small online shop, generated deterministically.

`sample_database_sql(seed)` returns one SQL script (types, tables, comments, rows, a view, and
a least-privilege login role); the same seed always gives a byte-identical script, because
every value comes from one `random.Random(seed)` and dates are offsets from a fixed base date
(never `now()`). The script is plain SQL (no psql meta-commands) and runs in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pgmcp.demo.shop_schema import COMMENTS, DEMO_ROLE, ROLE_SQL, SCHEMA_SQL
from pgmcp.demo.tempserver import run_psql

__all__ = ["DEMO_ROLE", "load_sample_database", "sample_database_sql"]

BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)
N_CUSTOMERS = 300
N_PRODUCTS = 120
N_ORDERS = 1200
N_REVIEWS = 600

Row = tuple[object, ...]

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Katrin",
    "Lukas", "Marie", "Noah", "Olivia", "Paul", "Quentin", "Rosa", "Samuel", "Tara", "Uwe", "Vera",
    "William", "Xenia", "Yusuf", "Zoe", "Amelie", "Bruno", "Chloé", "Diego", "Emma", "Finn",
    "Giulia", "Henrik", "Isabel", "Jakob", "Leonie", "Mateo", "Nora", "Oscar", "Priya", "Rafael",
    "Sofia", "Tobias", "Valentina", "Wei", "Yara", "Liam", "Mia", "Sean",
)
LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
    "Dubois", "Martin", "Bernard", "Lefèvre", "Rossi", "Russo", "Bianchi", "García", "Fernández",
    "López", "Jansen", "de Vries", "Bakker", "Smith", "Johnson", "Brown", "Taylor", "O'Brien",
    "Murphy", "Kowalski", "Nowak", "Novák", "Andersson", "Nilsson", "Hansen", "Larsen", "Silva",
    "Santos", "Costa", "Popescu", "Horvat",
)
# country code -> (phone prefix, cities, IBAN length)
COUNTRIES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "DE": ("+49", ("Berlin", "Hamburg", "München", "Köln", "Leipzig", "Freiburg"), 22),
    "FR": ("+33", ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes"), 27),
    "NL": ("+31", ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"), 18),
    "IT": ("+39", ("Roma", "Milano", "Torino", "Bologna", "Napoli"), 27),
    "ES": ("+34", ("Madrid", "Barcelona", "Valencia", "Sevilla"), 24),
    "IE": ("+353", ("Dublin", "Cork", "Galway"), 22),
    "PL": ("+48", ("Warszawa", "Kraków", "Gdańsk", "Wrocław"), 28),
    "GB": ("+44", ("London", "Manchester", "Bristol", "Edinburgh"), 22),
}
COUNTRY_WEIGHTS = (30, 15, 10, 10, 10, 5, 8, 12)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")

CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[int, int]]] = {
    # category -> (adjectives, nouns, price range in cents)
    "books": (("Illustrated", "Pocket", "Collected", "Annotated", "Complete"),
              ("Cookbook", "Atlas", "Novel", "Field Guide", "Poetry Anthology", "Travel Guide"),
              (799, 4999)),
    "electronics": (("Wireless", "Compact", "Smart", "Portable", "Noise-Cancelling"),
                    ("Headphones", "Speaker", "Charger", "Keyboard", "Webcam", "E-Reader"),
                    (1499, 34999)),
    "home": (("Ceramic", "Linen", "Oak", "Enamel", "Glass"),
             ("Mug Set", "Table Lamp", "Cutting Board", "Teapot", "Throw Blanket", "Vase"),
             (999, 12999)),
    "garden": (("Weatherproof", "Folding", "Solar", "Stainless"),
               ("Garden Hose", "Planter", "Pruning Shears", "Lantern", "Bird Feeder"),
               (699, 8999)),
    "toys": (("Wooden", "Magnetic", "Classic", "Junior"),
             ("Puzzle", "Building Set", "Board Game", "Kite", "Train Set"),
             (899, 7999)),
    "clothing": (("Organic Cotton", "Merino", "Waterproof", "Slim-Fit"),
                 ("T-Shirt", "Sweater", "Rain Jacket", "Socks (3 pairs)", "Beanie"),
                 (1299, 15999)),
    "sports": (("Lightweight", "Pro", "Ergonomic", "Adjustable"),
               ("Yoga Mat", "Running Belt", "Water Bottle", "Dumbbell Pair", "Bike Light"),
               (999, 9999)),
}
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
STATUS_WEIGHTS = (5, 10, 15, 60, 6, 4)
PAYMENT_METHODS = ("card", "bank_transfer", "paypal", "voucher")
PAYMENT_WEIGHTS = (55, 20, 20, 5)
REVIEW_BODIES = {
    1: ("Broke after a week.", "Not as described, returned it.", "Very disappointing quality."),
    2: ("Works, but feels cheap.", "Took three weeks to arrive.", "Smaller than expected."),
    3: ("Does the job.", "Okay for the price.", "Fine, nothing special."),
    4: ("Good value, would buy again.", "Nice quality, fast delivery.", "Happy with it overall."),
    5: ("Excellent, exactly what I wanted!", "Great quality — highly recommended.",
        "Perfect gift, arrived quickly."),
}

def sql_literal(value: object) -> str:
    """An SQL literal for the generated values (str, int, bool, None, preformatted numbers)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def _inserts(table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    # Multi-row INSERTs in chunks keep the script small and fast to load without COPY (which
    # would need psql's stdin handling).
    out: list[str] = []
    chunk: list[str] = []
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES\n"
    for row in rows:
        chunk.append("(" + ", ".join(sql_literal(v) for v in row) + ")")
        if len(chunk) == 500:
            out.append(head + ",\n".join(chunk) + ";\n")
            chunk = []
    if chunk:
        out.append(head + ",\n".join(chunk) + ";\n")
    return "".join(out)


def _iban(rng: random.Random, country: str, length: int) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(length - 4))
    # Real ISO 13616 check digits, so the values look (and validate) like IBANs.
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


def _customers(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    seen: set[str] = set()
    codes = list(COUNTRIES)
    for cid in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        country = rng.choices(codes, COUNTRY_WEIGHTS)[0]
        prefix, cities, _ = COUNTRIES[country]
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        if email in seen:
            email = f"{local}{cid}@{rng.choice(EMAIL_DOMAINS)}"
        seen.add(email)
        phone = (None if rng.random() < 0.1
                 else f"{prefix} {rng.randrange(100, 999)} {rng.randrange(1000000, 9999999)}")
        created = BASE_DATE - timedelta(days=rng.randrange(30, 1100), seconds=rng.randrange(86400))
        rows.append((cid, f"{first} {last}", email, phone, country, rng.choice(cities),
                     rng.random() < 0.35, _ts(created)))
    return rows


def _products(rng: random.Random) -> tuple[list[Row], list[int]]:
    rows: list[Row] = []
    prices: list[int] = []
    names: set[str] = set()
    cats = list(CATEGORIES)
    for pid in range(1, N_PRODUCTS + 1):
        cat = cats[(pid - 1) % len(cats)]
        adjectives, nouns, (low, high) = CATEGORIES[cat]
        name = f"{rng.choice(adjectives)} {rng.choice(nouns)}"
        if name in names:
            name = f"{name} ({rng.choice(('Blue', 'Green', 'Black', 'Sand', 'Red', 'XL', 'Mini'))})"
        names.add(name)
        cents = rng.randrange(low, high) // 100 * 100 + rng.choice((0, 49, 90, 95, 99))
        prices.append(cents)
        created = BASE_DATE - timedelta(days=rng.randrange(60, 1400))
        rows.append((pid, f"{cat[:3].upper()}-{pid:05d}", name, cat, _money(cents),
                     rng.randrange(0, 500), rng.random() > 0.05, _ts(created)))
    return rows, prices


def _orders(
    rng: random.Random, customers: list[Row], prices: list[int]
) -> tuple[list[Row], list[Row], list[Row]]:
    """Orders with their items and (for orders that got that far) one payment each."""
    orders: list[Row] = []
    items: list[Row] = []
    payments: list[Row] = []
    for oid in range(1, N_ORDERS + 1):
        cust = customers[rng.randrange(N_CUSTOMERS)]
        tenant = rng.choices((1, 2, 3), (60, 25, 15))[0]
        status = rng.choices(ORDER_STATUSES, STATUS_WEIGHTS)[0]
        ordered = BASE_DATE + timedelta(days=rng.randrange(365), seconds=rng.randrange(86400))
        shipped = (_ts(ordered + timedelta(hours=rng.randrange(6, 96)))
                   if status in ("shipped", "delivered", "refunded") else None)
        n_lines = rng.choices((1, 2, 3, 4, 5), (30, 30, 20, 12, 8))[0]
        total = 0
        for pid in sorted(rng.sample(range(1, N_PRODUCTS + 1), n_lines)):
            qty = rng.choices((1, 2, 3, 4), (70, 20, 7, 3))[0]
            unit = prices[pid - 1] if rng.random() > 0.15 else prices[pid - 1] * 9 // 10
            total += qty * unit
            items.append((oid, pid, qty, _money(unit)))
        orders.append((oid, cust[0], tenant, status, _ts(ordered), shipped, _money(total)))
        if status not in ("pending", "cancelled"):
            method = rng.choices(PAYMENT_METHODS, PAYMENT_WEIGHTS)[0]
            country = str(cust[4])
            last4 = f"{rng.randrange(10000):04d}" if method == "card" else None
            holder = str(cust[1]).upper() if method == "card" else None
            iban = _iban(rng, country, COUNTRIES[country][2]) if method == "bank_transfer" else None
            paid = ordered + timedelta(minutes=rng.randrange(1, 60 * 48))
            payments.append((len(payments) + 1, oid, method, last4, holder, iban, _money(total), _ts(paid)))
    return orders, items, payments


def _reviews(rng: random.Random) -> list[Row]:
    reviews: list[Row] = []
    pairs: set[tuple[int, int]] = set()
    while len(reviews) < N_REVIEWS:
        pid, cid = rng.randrange(1, N_PRODUCTS + 1), rng.randrange(1, N_CUSTOMERS + 1)
        if (pid, cid) in pairs:  # one review per customer and product
            continue
        pairs.add((pid, cid))
        rating = rng.choices((1, 2, 3, 4, 5), (5, 8, 15, 35, 37))[0]
        body = None if rng.random() < 0.1 else rng.choice(REVIEW_BODIES[rating])
        created = BASE_DATE + timedelta(days=rng.randrange(400), seconds=rng.randrange(86400))
        reviews.append((len(reviews) + 1, pid, cid, rating, body, _ts(created)))
    return reviews


def sample_database_sql(seed: int = 42) -> str:
    """The whole sample shop as one SQL script: types, tables, comments, data, view and role.

    Deterministic: the same seed gives a byte-identical script. Meant for an empty database
    (the script runs in one transaction and fails, leaving nothing behind, if the tables exist).
    """
    rng = random.Random(seed)
    customers = _customers(rng)
    products, prices = _products(rng)
    orders, items, payments = _orders(rng, customers, prices)
    reviews = _reviews(rng)

    parts = [
        f"-- pgmcp sample database: an online shop (generated, seed={seed})\n",
        "BEGIN;\n", "SET LOCAL client_min_messages = warning;\n", SCHEMA_SQL,
    ]
    parts += [f"COMMENT ON {target} IS {sql_literal(text)};\n" for target, text in COMMENTS.items()]
    parts.append(_inserts("public.customers", ("id", "name", "email", "phone", "country", "city",
                                               "marketing_opt_in", "created_at"), customers))
    parts.append(_inserts("public.products", ("id", "sku", "name", "category", "price", "stock", "active",
                                              "created_at"), products))
    parts.append(_inserts("public.orders", ("id", "customer_id", "tenant_id", "status", "ordered_at",
                                            "shipped_at", "total"), orders))
    parts.append(_inserts("public.order_items", ("order_id", "product_id", "quantity", "unit_price"), items))
    parts.append(_inserts("public.payments", ("id", "order_id", "method", "card_last4", "card_holder",
                                              "iban", "amount", "paid_at"), payments))
    parts.append(_inserts("public.reviews", ("id", "product_id", "customer_id", "rating", "body",
                                             "created_at"), reviews))
    # Explicit ids were inserted, so move each identity past them for later inserts.
    for table, count in (("customers", len(customers)), ("products", len(products)), ("orders", len(orders)),
                         ("payments", len(payments)), ("reviews", len(reviews))):
        parts.append(f"ALTER TABLE public.{table} ALTER COLUMN id RESTART WITH {count + 1};\n")
    parts.append(ROLE_SQL)
    parts.append("COMMIT;\nANALYZE;\n")
    return "".join(parts)


def load_sample_database(dsn: str) -> None:
    """Create the sample shop in the (empty) database at `dsn`; needs a role that may CREATE ROLE."""
    run_psql(dsn, sample_database_sql())
