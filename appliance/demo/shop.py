"""Acme, the demo shop: its SQLite order database and the tools the demo agent calls on it.

Money is integer cents in the database and dollars (two decimals) at the tools' edge. The rules
the tools enforce are the ones Acme's knowledge documents state: a delivery address can change
only while the order is processing, and the refunds on an order never add up to more than was
paid. Each tool opens its own connection and writes in one ``BEGIN IMMEDIATE`` transaction, so
two calls refunding the same order cannot both spend the same refundable amount.
"""

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from parley.appliance.agent.tools import ToolContext, ToolError, ToolRefused

MIN_ADDRESS_LENGTH = 10
MAX_ADDRESS_LENGTH = 200
MAX_REASON_LENGTH = 200
STATUSES = ("processing", "shipped", "delivered", "cancelled")

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    postcode TEXT NOT NULL
) STRICT;
CREATE TABLE orders (
    order_number TEXT PRIMARY KEY CHECK (order_number GLOB '[0-9][0-9][0-9][0-9]'),
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    placed_at TEXT NOT NULL,
    delivered_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    delivery_address TEXT NOT NULL,
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0)
) STRICT;
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    order_number TEXT NOT NULL REFERENCES orders(order_number),
    sku TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
) STRICT;
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY,
    order_number TEXT NOT NULL REFERENCES orders(order_number),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    call_id TEXT  -- NULL for the refunds the demo data starts with
) STRICT;
CREATE TABLE address_changes (
    id INTEGER PRIMARY KEY,
    order_number TEXT NOT NULL REFERENCES orders(order_number),
    old_address TEXT NOT NULL,
    new_address TEXT NOT NULL,
    call_id TEXT NOT NULL,
    changed_at TEXT NOT NULL
) STRICT;
CREATE INDEX items_by_order ON items(order_number);
CREATE INDEX refunds_by_order ON refunds(order_number);
"""


class ShopDatabaseError(Exception):
    """The file at a shop path exists but is not an Acme shop database."""


# --- the demo data ----------------------------------------------------------------------------


class _Customer(NamedTuple):
    id: int
    name: str
    email: str
    phone: str
    postcode: str
    address: str


class _Order(NamedTuple):
    number: str
    customer_id: int
    placed_days_ago: int
    status: str
    items: tuple[tuple[str, str, int, int], ...]  # sku, description, quantity, unit price in cents
    refunds: tuple[tuple[int, str, int], ...] = ()  # cents, reason, days ago
    delivered_days_ago: int | None = None


CUSTOMERS = (
    _Customer(1, "Maria Lopez", "maria.lopez@example.com", "+1 310 555 0142", "90210",
              "1234 Palm Drive, Beverly Hills, CA 90210"),
    _Customer(2, "James Whitaker", "j.whitaker@example.com", "+1 212 555 0178", "10014",
              "88 Bleecker Street, Apt 4B, New York, NY 10014"),
    _Customer(3, "Aisha Khan", "aisha.khan@example.com", "+1 312 555 0119", "60614",
              "2150 North Clark Street, Chicago, IL 60614"),
    _Customer(4, "Tom Becker", "tom.becker@example.com", "+1 503 555 0163", "97205",
              "415 SW Yamhill Street, Portland, OR 97205"),
    _Customer(5, "Priya Natarajan", "priya.n@example.com", "+1 512 555 0134", "78704",
              "1900 South Congress Avenue, Austin, TX 78704"),
    _Customer(6, "Daniel Okafor", "d.okafor@example.com", "+1 404 555 0187", "30308",
              "730 Peachtree Street NE, Atlanta, GA 30308"),
    _Customer(7, "Sofia Rossi", "sofia.rossi@example.com", "+1 617 555 0125", "02116",
              "27 Newbury Street, Boston, MA 02116"),
    _Customer(8, "Hiroshi Tanaka", "h.tanaka@example.com", "+1 206 555 0151", "98101",
              "1501 Fourth Avenue, Seattle, WA 98101"),
)
"""Fictional people: 555-01xx numbers and example.com addresses reach no one."""

ORDERS = (
    _Order("4512", 1, 14, "delivered",
           (("KET-1700", "Electric kettle, 1.7 litre, brushed steel", 1, 4999),
            ("MUG-0350", "Stoneware mug, 350 ml, sage green", 2, 749)), delivered_days_ago=11),
    _Order("7731", 2, 1, "processing",
           (("LMP-0420", "Brass desk lamp", 1, 6900),
            ("BLB-0060", "LED bulb, warm white, 2-pack", 1, 1250))),
    _Order("2208", 3, 4, "shipped",
           (("THR-0130", "Wool throw blanket, 130 x 170 cm, charcoal", 1, 8900),)),
    _Order("3190", 4, 23, "delivered",
           (("SPK-0200", "Portable Bluetooth speaker", 1, 5999),),
           refunds=((5999, "Arrived damaged: cracked casing", 16),), delivered_days_ago=19),
    _Order("5067", 5, 20, "delivered",
           (("PAN-SET5", "Nonstick cookware set, 5 pieces", 1, 12900),
            ("UTN-0006", "Silicone utensil set, 6 pieces", 1, 2400)),
           refunds=((2400, "Utensil set returned unused", 9),), delivered_days_ago=16),
    _Order("6120", 6, 9, "cancelled",
           (("CHR-0010", "Oak dining chair", 2, 11500),)),
    _Order("8843", 7, 38, "delivered",
           (("TEA-0440", "Loose-leaf tea sampler, 12 teas", 1, 3200),
            ("INF-0001", "Glass teapot with infuser", 1, 2800)), delivered_days_ago=34),
    _Order("1456", 8, 2, "processing",
           (("KNF-0008", "Chef's knife, 8 inch", 1, 7500),
            ("BRD-0012", "End-grain cutting board", 1, 5400))),
    _Order("9302", 1, 6, "shipped",
           (("TWL-0004", "Cotton bath towels, set of 4", 1, 4600),)),
    _Order("3875", 2, 12, "delivered",
           (("CFM-0012", "Drip coffee maker, 12 cup", 1, 8999),
            ("FLT-0100", "Paper coffee filters, 100 pack", 2, 499)),
           refunds=((1500, "Price adjustment: coffee maker went on sale", 5),), delivered_days_ago=8),
    _Order("6644", 3, 30, "cancelled",
           (("PLN-0030", "Ceramic planter, 30 cm", 1, 3400),)),
    _Order("2589", 4, 3, "processing",
           (("SHT-QUEN", "Percale sheet set, queen", 1, 9800),)),
    _Order("7017", 5, 7, "shipped",
           (("BLN-0600", "Countertop blender, 600 watt", 1, 7999),)),
    _Order("4120", 6, 17, "delivered",
           (("CAN-0003", "Soy candles, set of 3", 1, 3600),
            ("MCH-0050", "Long matches, 50 pack", 1, 399)), delivered_days_ago=13),
    _Order("8206", 7, 26, "delivered",
           (("RUG-0812", "Jute rug, 8 x 10 ft", 1, 19900),),
           refunds=((5000, "Goodwill credit: delivery arrived a week late", 20),
                    (14900, "Returned: colour not as pictured", 10)), delivered_days_ago=22),
    _Order("5533", 8, 5, "shipped",
           (("GLS-0006", "Wine glasses, set of 6", 1, 4200),
            ("DCN-0001", "Glass decanter", 1, 3500))),
)
"""Every status; 4512 is the kettle and two mugs ($64.97), 7731 can still change address, 2208
has shipped, 3190 and 8206 are refunded in full, 5067 and 3875 in part, 6120 and 6644 cancelled."""


def _moment(today: date, days_ago: int, minute: int) -> str:
    at = datetime.combine(today - timedelta(days=days_ago), time(10, 0), tzinfo=UTC) + timedelta(minutes=minute)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_shop(path: str | os.PathLike, *, today: date | None = None) -> Path:
    """A new shop database at ``path`` holding the demo data, dated relative to ``today``.

    The same ``today`` gives the same file contents. The file appears complete or not at all.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; remove it or use fresh_copy() to replace it")
    today = today or datetime.now(UTC).date()
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{os.getpid()}.building")
    building.unlink(missing_ok=True)
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(f"BEGIN;\n{SCHEMA}")
        conn.executemany(
            "INSERT INTO customers (id, name, email, phone, postcode) VALUES (?, ?, ?, ?, ?)",
            [c[:5] for c in CUSTOMERS],
        )
        addresses = {c.id: c.address for c in CUSTOMERS}
        for index, order in enumerate(ORDERS):
            delivered_at = (
                None if order.delivered_days_ago is None else _moment(today, order.delivered_days_ago, index)
            )
            total = sum(quantity * price for _, _, quantity, price in order.items)
            conn.execute(
                "INSERT INTO orders (order_number, customer_id, placed_at, delivered_at, status, delivery_address,"
                " total_cents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (order.number, order.customer_id, _moment(today, order.placed_days_ago, index), delivered_at,
                 order.status, addresses[order.customer_id], total),
            )
            conn.executemany(
                "INSERT INTO items (order_number, sku, description, quantity, unit_price_cents) VALUES (?, ?, ?, ?, ?)",
                [(order.number, *item) for item in order.items],
            )
            conn.executemany(
                "INSERT INTO refunds (order_number, amount_cents, reason, created_at) VALUES (?, ?, ?, ?)",
                [(order.number, cents, reason, _moment(today, days_ago, index))
                 for cents, reason, days_ago in order.refunds],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        building.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(building, path)
    return path


def fresh_for_tests(tool_config) -> Path:
    """The agent-test fixture (``testing.fixture`` in acme/agent.yaml): a new shop at ``shop_db``."""
    return fresh_copy(None, tool_config["shop_db"])


def fresh_copy(template: str | os.PathLike | None, dest: str | os.PathLike, *, today: date | None = None) -> Path:
    """``dest`` as a fresh shop: a copy of ``template``, or newly created when ``template`` is None.

    Whatever was at ``dest`` is replaced, so each test, simulation or demo call starts clean.
    """
    dest = Path(dest)
    if template is not None and Path(template).resolve() == dest.resolve():
        raise ValueError(f"fresh_copy() would replace its own template {dest}; give another destination")
    dest.unlink(missing_ok=True)
    if template is None:
        return create_shop(dest, today=today)
    template = Path(template)
    if not template.is_file():
        raise FileNotFoundError(f"shop template {template} does not exist; create it with create_shop()")
    source = _connect(template)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    return dest


def ensure_shop(path: str | os.PathLike, *, today: date | None = None) -> Path:
    """The shop at ``path``, created with the demo data when nothing is there yet."""
    path = Path(path)
    if not path.exists():
        return create_shop(path, today=today)
    try:
        conn = _connect(path)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise ShopDatabaseError(f"{path} is not a SQLite database ({error}); remove it to start a fresh shop") from None
    missing = {"customers", "orders", "items", "refunds", "address_changes"} - tables
    if missing:
        raise ShopDatabaseError(
            f"{path} is not an Acme shop database (no {', '.join(sorted(missing))} table); "
            "remove it to start a fresh shop"
        )
    return path


# --- reading spoken order numbers -------------------------------------------------------------

_UNITS = {"zero": 0, "nought": 0, "naught": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
         "seventy": 70, "eighty": 80, "ninety": 90}
_OH = {"oh", "o"}
_REPEATS = {"double": 2, "triple": 3}
_SCALES = {"hundred": 100, "thousand": 1000}
_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+|[a-z]+|[.?!;]")


def _is_word_number(token: str) -> bool:
    return token in _UNITS or token in _TEENS or token in _TENS


def _runs(tokens: list[str]) -> Iterator[list[str]]:
    """Stretches of number tokens; any other word or a sentence end separates them."""
    run: list[str] = []
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token[0].isdigit():
            run.append(token.replace(",", ""))
        elif _is_word_number(token):
            run.append(token)
        elif token in _OH and run:  # "two two oh eight"; a leading "oh" is an exclamation
            run.append("0")
        elif token in _SCALES and run:
            run.append(token)
        elif token == "and" and run and run[-1] in _SCALES and _is_word_number(following):
            run.append(token)
        elif token in _REPEATS and (following in _UNITS or following in _OH or re.fullmatch(r"\d", following)):
            run.append(token)
        else:
            if run:
                yield run
            run = []
    if run:
        yield run


def _below_hundred(run: list[str], i: int) -> tuple[int, int]:
    token = run[i]
    if token in _TENS:
        value = _TENS[token]
        if i + 1 < len(run) and run[i + 1] in _UNITS and _UNITS[run[i + 1]]:
            return value + _UNITS[run[i + 1]], i + 2
        return value, i + 1
    if token in _TEENS:
        return _TEENS[token], i + 1
    return _UNITS[token], i + 1


def _after_scale(run: list[str], i: int) -> tuple[int, int]:
    """The optional "[and] twelve" after "hundred" or "thousand"."""
    if i < len(run) and run[i] == "and":
        i += 1
    if i < len(run) and _is_word_number(run[i]) and run[i] not in ("zero", "nought", "naught"):
        return _below_hundred(run, i)
    return 0, i


def _cardinal(run: list[str], i: int) -> tuple[int, int]:
    """"forty five", "four thousand five hundred and twelve", "twenty two hundred"."""
    value, i = _below_hundred(run, i)
    if i < len(run) and run[i] == "thousand":
        value, i = value * 1000, i + 1
        if i + 1 < len(run) and run[i] in _UNITS and run[i + 1] == "hundred":
            hundreds, i = _UNITS[run[i]] * 100, i + 2
            rest, i = _after_scale(run, i)
            return value + hundreds + rest, i
        rest, i = _after_scale(run, i)
        return value + rest, i
    if i < len(run) and run[i] == "hundred":
        rest, i = _after_scale(run, i + 1)
        return value * 100 + rest, i
    return value, i


def _digit_groups(run: list[str]) -> list[str]:
    """A run as the digit strings a listener hears in it: "forty five twelve" is "45", "12"."""
    groups, i = [], 0
    while i < len(run):
        token = run[i]
        if token[0].isdigit():
            groups.append(token)
            i += 1
        elif token in _REPEATS:
            following = run[i + 1] if i + 1 < len(run) else ""
            digit = str(_UNITS[following]) if following in _UNITS else following
            groups.append(digit * _REPEATS[token])
            i += 2
        elif _is_word_number(token):
            value, i = _cardinal(run, i)
            groups.append(str(value))
        else:  # a stray "hundred" or "and" the run rules let through; it says no digit
            i += 1
    return groups


def normalize_order_number(text: Any) -> str | None:
    """The four-digit order number in typed or transcribed ``text``, or None when there is no
    single one to read.

    Reads "4512", "#4512", "order 4512", "4 5 1 2", "Four, five, one, two.", "forty-five twelve",
    "four thousand five hundred and twelve", "two two oh eight", "double seven three one".
    Two different numbers ("4512 or maybe 7731") give None rather than a guess.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        return None
    tokens = _TOKEN.findall(str(text).lower())
    joined: list[str] = []
    single: list[str] = []
    for run in _runs(tokens):
        groups = _digit_groups(run)
        whole = "".join(groups)
        if len(whole) == 4:
            joined.append(whole)
        single.extend(group for group in groups if len(group) == 4)
    candidates = set(joined) or set(single)
    return candidates.pop() if len(candidates) == 1 else None


# --- the tools --------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to an existing file (never creating one), in autocommit mode."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def _shop(context: ToolContext, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """The shop database named by the agent's ``tool_config.shop_db``; writes in one transaction."""
    configured = context.config.get("shop_db")
    if not configured:
        raise ToolError(
            "Sorry, I can't reach our order system right now.",
            code="unavailable",
            detail="the agent file's tool_config has no shop_db",
        )
    path = Path(configured)
    if not path.is_file():
        raise ToolError(
            "Sorry, I can't reach our order system right now.",
            code="unavailable",
            detail=f"shop_db {path} does not exist; run `parley demo` or create it with create_shop()",
        )
    try:
        conn = _connect(path)
    except sqlite3.OperationalError as error:
        raise ToolError(
            "Sorry, I can't reach our order system right now.", code="unavailable", detail=f"{path}: {error}"
        ) from error
    try:
        if write:
            conn.execute("BEGIN IMMEDIATE")
        yield conn
        if write:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as error:
        raise ToolError(
            "Sorry, our order system isn't answering right now.", code="unavailable", detail=f"{path}: {error}"
        ) from error
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _order_number(order_id: Any) -> str:
    number = normalize_order_number(order_id)
    if number is None:
        raise ToolError(
            "I didn't catch a four-digit order number. Could you read it to me again?",
            code="invalid_argument",
            detail=f"no single four-digit order number in {order_id!r}",
        )
    return number


def _find_order(conn: sqlite3.Connection, number: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT o.*, c.name AS customer_name,"
        " (SELECT coalesce(sum(amount_cents), 0) FROM refunds r WHERE r.order_number = o.order_number)"
        " AS refunded_cents"
        " FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_number = ?",
        (number,),
    ).fetchone()
    if row is None:
        raise ToolError(f"I couldn't find order {number}.", code="not_found", detail=f"no order {number}")
    return row


def _dollars(cents: int) -> float:
    return round(cents / 100, 2)


def _cents(amount: Any) -> int:
    """Dollars as the LLM gives them (20, 20.5, "$20.50") in whole cents."""
    if isinstance(amount, str):
        amount = amount.strip().lstrip("$").replace(",", "")
    try:
        if isinstance(amount, bool):
            raise TypeError
        value = float(amount)
    except (TypeError, ValueError):
        value = float("nan")
    cents = round(value * 100) if value == value and abs(value) < 1e9 else None
    if cents is None or abs(value * 100 - cents) > 1e-6:
        raise ToolError(
            "Sorry, I didn't get the amount. How much should I refund?",
            code="invalid_argument",
            detail=f"amount {amount!r} is not a number of dollars and cents",
        )
    return cents


def lookup_order(context: ToolContext, order_id: str) -> dict:
    """An order's status, items, money and delivery address."""
    number = _order_number(order_id)
    with _shop(context) as conn:
        order = _find_order(conn, number)
        items = conn.execute(
            "SELECT description, quantity, unit_price_cents FROM items WHERE order_number = ? ORDER BY id", (number,)
        ).fetchall()
    refundable = 0 if order["status"] == "cancelled" else order["total_cents"] - order["refunded_cents"]
    return {
        "order_id": number,
        "status": order["status"],
        "placed_on": order["placed_at"][:10],
        "delivered_on": order["delivered_at"][:10] if order["delivered_at"] else None,
        "items": [
            {
                "description": item["description"],
                "quantity": item["quantity"],
                "price": _dollars(item["unit_price_cents"]),
            }
            for item in items
        ],
        "total": _dollars(order["total_cents"]),
        "refunded": _dollars(order["refunded_cents"]),
        "refundable": _dollars(refundable),
        "delivery_address": order["delivery_address"],
        "customer_first_name": order["customer_name"].split()[0],
    }


def issue_refund(context: ToolContext, order_id: str, amount: Any, reason: str) -> dict:
    """Refund ``amount`` dollars of an order to the original payment method."""
    number = _order_number(order_id)
    cents = _cents(amount)
    if cents <= 0:
        raise ToolError(
            "The refund amount has to be more than zero.", code="invalid_argument", detail=f"amount {amount!r} <= 0"
        )
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise ToolError(
            "Could you tell me the reason for the refund?", code="invalid_argument", detail="reason is empty"
        )
    with _shop(context, write=True) as conn:
        order = _find_order(conn, number)
        if order["status"] == "cancelled":
            raise ToolRefused(
                f"Order {number} was cancelled, so there's nothing to refund on it.",
                code="not_allowed",
                detail=f"order {number} is cancelled",
            )
        refundable = order["total_cents"] - order["refunded_cents"]
        if cents > refundable:
            spoken = (
                f"Order {number} has already been refunded in full."
                if refundable <= 0
                else f"I can refund at most ${refundable / 100:.2f} on order {number}."
            )
            raise ToolRefused(
                spoken,
                code="limit_exceeded",
                detail=f"asked {cents} cents, refundable {refundable} of {order['total_cents']} on {number}",
            )
        refund_id = conn.execute(
            "INSERT INTO refunds (order_number, amount_cents, reason, created_at, call_id) VALUES (?, ?, ?, ?, ?)",
            (number, cents, reason[:MAX_REASON_LENGTH], _now_text(), context.call_id),
        ).lastrowid
    return {
        "refund_id": refund_id,
        "order_id": number,
        "amount": _dollars(cents),
        "refundable_left": _dollars(refundable - cents),
    }


_TOO_LATE_TO_REDIRECT = {
    "shipped": "Order {n} has already shipped, so its delivery address can't be changed any more.",
    "delivered": "Order {n} has already been delivered, so there's no delivery left to change.",
    "cancelled": "Order {n} was cancelled, so there's no delivery to change.",
}


def change_delivery_address(context: ToolContext, order_id: str, new_address: str) -> dict:
    """Send an order that has not shipped yet to a different address."""
    number = _order_number(order_id)
    address = " ".join(str(new_address or "").split())
    if not MIN_ADDRESS_LENGTH <= len(address) <= MAX_ADDRESS_LENGTH:
        raise ToolError(
            "Could you give me the full new address, with street, town and postcode?",
            code="invalid_argument",
            detail=f"address of {len(address)} characters; {MIN_ADDRESS_LENGTH} to {MAX_ADDRESS_LENGTH} expected",
        )
    with _shop(context, write=True) as conn:
        order = _find_order(conn, number)
        if order["status"] != "processing":
            raise ToolRefused(
                _TOO_LATE_TO_REDIRECT[order["status"]].format(n=number),
                code="not_allowed",
                detail=f"order {number} is {order['status']}",
            )
        if address != order["delivery_address"]:
            conn.execute("UPDATE orders SET delivery_address = ? WHERE order_number = ?", (address, number))
            conn.execute(
                "INSERT INTO address_changes (order_number, old_address, new_address, call_id, changed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (number, order["delivery_address"], address, context.call_id, _now_text()),
            )
    return {"order_id": number, "delivery_address": address}


# --- reading the database directly (tests, the demo's goal check) -----------------------------


def order_row(path: str | os.PathLike, order_id: str) -> dict | None:
    """The order's row as stored (cents, status, address) plus ``refunded_cents``; None if absent."""
    conn = _connect(Path(path))
    try:
        row = conn.execute(
            "SELECT o.*, (SELECT coalesce(sum(amount_cents), 0) FROM refunds r"
            " WHERE r.order_number = o.order_number) AS refunded_cents FROM orders o WHERE order_number = ?",
            (order_id,),
        ).fetchone()
    finally:
        conn.close()
    return dict(row) if row else None


def refunds_for(path: str | os.PathLike, order_id: str) -> list[dict]:
    """The order's refunds, oldest first, as stored."""
    return _rows(path, "SELECT * FROM refunds WHERE order_number = ? ORDER BY id", order_id)


def address_changes_for(path: str | os.PathLike, order_id: str) -> list[dict]:
    """The order's address changes, oldest first, as stored."""
    return _rows(path, "SELECT * FROM address_changes WHERE order_number = ? ORDER BY id", order_id)


def _rows(path: str | os.PathLike, sql: str, *parameters: Any) -> list[dict]:
    conn = _connect(Path(path))
    try:
        return [dict(row) for row in conn.execute(sql, parameters)]
    finally:
        conn.close()


# --- what the agent file references -----------------------------------------------------------

_ORDER_ID = {
    "type": "string",
    "pattern": "^[0-9]{4}$",
    "description": 'The four-digit order number, digits only, e.g. "4512".',
}

LOOKUP_ORDER_PARAMETERS = {
    "type": "object",
    "properties": {"order_id": _ORDER_ID},
    "required": ["order_id"],
    "additionalProperties": False,
}

ISSUE_REFUND_PARAMETERS = {
    "type": "object",
    "properties": {
        "order_id": _ORDER_ID,
        "amount": {
            "type": "number",
            "minimum": 0.01,
            "description": "Dollars to refund, at most the order's `refundable` from lookup_order.",
        },
        "reason": {
            "type": "string",
            "minLength": 3,
            "maxLength": MAX_REASON_LENGTH,
            "description": "Why, in a few words, e.g. \"kettle arrived damaged\".",
        },
    },
    "required": ["order_id", "amount", "reason"],
    "additionalProperties": False,
}

CHANGE_DELIVERY_ADDRESS_PARAMETERS = {
    "type": "object",
    "properties": {
        "order_id": _ORDER_ID,
        "new_address": {
            "type": "string",
            "minLength": MIN_ADDRESS_LENGTH,
            "maxLength": MAX_ADDRESS_LENGTH,
            "description": "The full new address on one line: street and number, town, state, ZIP code.",
        },
    },
    "required": ["order_id", "new_address"],
    "additionalProperties": False,
}


class ShopTool(NamedTuple):
    handler: Any
    parameters: dict
    description: str


TOOLS = {
    "lookup_order": ShopTool(
        lookup_order,
        LOOKUP_ORDER_PARAMETERS,
        "Look up an Acme order by its four-digit number: status, items, total, what has been refunded "
        "and what can still be refunded, delivery address and the customer's first name.",
    ),
    "issue_refund": ShopTool(
        issue_refund,
        ISSUE_REFUND_PARAMETERS,
        "Refund part or all of an order to the original payment method. The amount cannot exceed the "
        "order's refundable amount; cancelled orders cannot be refunded.",
    ),
    "change_delivery_address": ShopTool(
        change_delivery_address,
        CHANGE_DELIVERY_ADDRESS_PARAMETERS,
        "Change where an order will be delivered. Only possible while the order is still processing, "
        "before it ships.",
    ),
}
"""Each tool as (handler, JSON-schema parameters, description); the agent file names the handler
as ``parley.appliance.demo.shop:<name>``."""
