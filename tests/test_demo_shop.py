"""Acme's order database and its tools: the seed, what each tool does, and what it refuses."""

import sqlite3
from datetime import date

import pytest

from parley.appliance.agent.tools import ToolContext, ToolError, ToolRefused, call_tool
from parley.appliance.demo import shop
from parley.appliance.demo.shop import (
    TOOLS,
    ShopDatabaseError,
    change_delivery_address,
    create_shop,
    ensure_shop,
    fresh_copy,
    issue_refund,
    lookup_order,
    normalize_order_number,
    order_row,
    refunds_for,
)

TODAY = date(2025, 6, 16)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return create_shop(tmp_path_factory.mktemp("acme") / "template.sqlite", today=TODAY)


@pytest.fixture
def db(template, tmp_path):
    return fresh_copy(template, tmp_path / "shop.sqlite")


@pytest.fixture
def context(db):
    return ToolContext(call_id="call-7", config={"shop_db": str(db)})


def rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- the seed ---------------------------------------------------------------------------------


def test_seed_covers_every_status_with_consistent_totals(db):
    statuses = dict(rows(db, "SELECT status, count(*) FROM orders GROUP BY status"))
    assert set(statuses) == {"processing", "shipped", "delivered", "cancelled"}
    assert rows(db, "SELECT count(*) FROM customers") == [(8,)]
    assert rows(db, "SELECT count(*) FROM orders") == [(16,)]
    mismatched = rows(
        db,
        "SELECT o.order_number FROM orders o JOIN items i USING (order_number) GROUP BY o.order_number"
        " HAVING o.total_cents != sum(i.quantity * i.unit_price_cents)",
    )
    assert mismatched == []
    overspent = rows(
        db,
        "SELECT o.order_number FROM orders o JOIN refunds r USING (order_number) GROUP BY o.order_number"
        " HAVING sum(r.amount_cents) > o.total_cents",
    )
    assert overspent == []
    assert rows(db, "PRAGMA foreign_key_check") == []


def test_seed_has_the_orders_the_demo_talks_about(db):
    kettle = order_row(db, "4512")
    assert (kettle["status"], kettle["total_cents"], kettle["refunded_cents"]) == ("delivered", 6497, 0)
    assert rows(db, "SELECT name, postcode FROM customers WHERE id = 1") == [("Maria Lopez", "90210")]
    assert order_row(db, "7731")["status"] == "processing"
    assert order_row(db, "2208")["status"] == "shipped"
    full = order_row(db, "3190")
    assert full["refunded_cents"] == full["total_cents"] > 0
    partial = order_row(db, "5067")
    assert 0 < partial["refunded_cents"] < partial["total_cents"]
    assert order_row(db, "0000") is None


def test_the_same_day_gives_the_same_database(tmp_path):
    first = create_shop(tmp_path / "a.sqlite", today=TODAY)
    second = create_shop(tmp_path / "b.sqlite", today=TODAY)
    for table in ("customers", "orders", "items", "refunds"):
        assert rows(first, f"SELECT * FROM {table} ORDER BY 1") == rows(second, f"SELECT * FROM {table} ORDER BY 1")


def test_dates_are_relative_to_today(db):
    placed, delivered = rows(db, "SELECT placed_at, delivered_at FROM orders WHERE order_number = '4512'")[0]
    assert placed.startswith("2025-06-02")
    assert delivered.startswith("2025-06-05")


def test_create_shop_refuses_to_overwrite(db):
    with pytest.raises(FileExistsError, match="fresh_copy"):
        create_shop(db)


def test_fresh_copy_isolates_each_run(template, tmp_path, context):
    issue_refund(context, "4512", 10, "mug chipped")
    assert len(refunds_for(context.config["shop_db"], "4512")) == 1
    assert refunds_for(template, "4512") == []
    again = fresh_copy(template, context.config["shop_db"])
    assert refunds_for(again, "4512") == []


def test_fresh_copy_without_template_creates_one(tmp_path):
    path = fresh_copy(None, tmp_path / "new.sqlite", today=TODAY)
    assert order_row(path, "4512")["total_cents"] == 6497


def test_fresh_copy_of_a_missing_template_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="create_shop"):
        fresh_copy(tmp_path / "missing.sqlite", tmp_path / "dest.sqlite")


def test_ensure_shop_creates_once_then_keeps_the_data(tmp_path):
    path = ensure_shop(tmp_path / "shop.sqlite", today=TODAY)
    issue_refund(ToolContext("c", {"shop_db": str(path)}), "4512", 5, "goodwill")
    assert ensure_shop(path) == path
    assert len(refunds_for(path, "4512")) == 1


def test_ensure_shop_refuses_a_foreign_database(tmp_path):
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE notes (text)").connection.close()
    with pytest.raises(ShopDatabaseError, match="not an Acme shop database"):
        ensure_shop(path)


# --- lookup_order -----------------------------------------------------------------------------


def test_lookup_order_reports_items_money_and_customer(context):
    result = lookup_order(context, "4512")
    assert result == {
        "order_id": "4512",
        "status": "delivered",
        "placed_on": "2025-06-02",
        "delivered_on": "2025-06-05",
        "items": [
            {"description": "Electric kettle, 1.7 litre, brushed steel", "quantity": 1, "price": 49.99},
            {"description": "Stoneware mug, 350 ml, sage green", "quantity": 2, "price": 7.49},
        ],
        "total": 64.97,
        "refunded": 0.0,
        "refundable": 64.97,
        "delivery_address": "1234 Palm Drive, Beverly Hills, CA 90210",
        "customer_first_name": "Maria",
    }


def test_lookup_order_accepts_spoken_forms(context):
    assert lookup_order(context, "four five one two")["order_id"] == "4512"
    assert lookup_order(context, "#7731")["status"] == "processing"


def test_lookup_order_shows_what_is_left_to_refund(context):
    partly = lookup_order(context, "5067")
    assert partly["refunded"] == 24.0 and partly["refundable"] == 129.0
    assert lookup_order(context, "3190")["refundable"] == 0.0
    assert lookup_order(context, "6120")["refundable"] == 0.0


def test_lookup_of_an_unknown_order_is_not_found(context):
    with pytest.raises(ToolError) as raised:
        lookup_order(context, "1111")
    assert raised.value.code == "not_found"
    assert raised.value.spoken == "I couldn't find order 1111."


def test_lookup_without_a_readable_number_asks_again(context):
    with pytest.raises(ToolError) as raised:
        lookup_order(context, "the blue one")
    assert raised.value.code == "invalid_argument"
    assert "order number" in raised.value.spoken


@pytest.mark.parametrize("config", [{}, {"shop_db": "/nonexistent/shop.sqlite"}])
def test_a_missing_database_is_unavailable_and_not_created(config, tmp_path):
    with pytest.raises(ToolError) as raised:
        lookup_order(ToolContext("c", config), "4512")
    assert raised.value.code == "unavailable"


# --- issue_refund -----------------------------------------------------------------------------


def test_refund_is_recorded_with_the_call(context, db):
    result = issue_refund(context, "4512", 7.49, "mug arrived chipped")
    assert result == {"refund_id": result["refund_id"], "order_id": "4512", "amount": 7.49, "refundable_left": 57.48}
    [refund] = refunds_for(db, "4512")
    assert (refund["id"], refund["amount_cents"], refund["reason"], refund["call_id"]) == (
        result["refund_id"], 749, "mug arrived chipped", "call-7"
    )


def test_refunds_cannot_add_up_to_more_than_was_paid(context, db):
    issue_refund(context, "4512", 49.99, "kettle returned")
    with pytest.raises(ToolRefused) as raised:
        issue_refund(context, "4512", 15.00, "mugs returned")
    assert raised.value.code == "limit_exceeded"
    assert "$14.98" in raised.value.spoken
    assert issue_refund(context, "4512", 14.98, "mugs returned")["refundable_left"] == 0.0
    assert sum(r["amount_cents"] for r in refunds_for(db, "4512")) == 6497


def test_a_fully_refunded_order_refuses_any_refund(context):
    with pytest.raises(ToolRefused) as raised:
        issue_refund(context, "3190", 0.01, "goodwill")
    assert raised.value.code == "limit_exceeded"
    assert "refunded in full" in raised.value.spoken


def test_a_cancelled_order_refuses_a_refund(context, db):
    with pytest.raises(ToolRefused) as raised:
        issue_refund(context, "6120", 10, "changed mind")
    assert raised.value.code == "not_allowed"
    assert refunds_for(db, "6120") == []


@pytest.mark.parametrize("amount", [0, -5, "lots", 10.005, True, float("nan")])
def test_a_refund_amount_that_is_not_positive_dollars_and_cents_is_invalid(context, db, amount):
    with pytest.raises(ToolError) as raised:
        issue_refund(context, "4512", amount, "reason")
    assert raised.value.code == "invalid_argument"
    assert refunds_for(db, "4512") == []


def test_a_refund_amount_as_text_is_read_as_dollars(context):
    assert issue_refund(context, "4512", "$20.50", "kettle dented")["amount"] == 20.5


def test_a_refund_needs_a_reason(context):
    with pytest.raises(ToolError) as raised:
        issue_refund(context, "4512", 5, "   ")
    assert raised.value.code == "invalid_argument"


def test_a_refund_that_is_refused_changes_nothing(context, db):
    with pytest.raises(ToolRefused):
        issue_refund(context, "4512", 64.98, "everything")
    assert refunds_for(db, "4512") == []


# --- change_delivery_address ------------------------------------------------------------------


def test_address_changes_while_processing_and_is_recorded(context, db):
    result = change_delivery_address(context, "7731", "  55 Water Street,\n Brooklyn, NY 11201 ")
    assert result == {"order_id": "7731", "delivery_address": "55 Water Street, Brooklyn, NY 11201"}
    assert order_row(db, "7731")["delivery_address"] == "55 Water Street, Brooklyn, NY 11201"
    [change] = shop.address_changes_for(db, "7731")
    assert change["old_address"] == "88 Bleecker Street, Apt 4B, New York, NY 10014"
    assert change["call_id"] == "call-7"


@pytest.mark.parametrize(
    ("order_id", "spoken"),
    [
        ("2208", "Order 2208 has already shipped, so"),
        ("4512", "Order 4512 has already been delivered"),
        ("6120", "Order 6120 was cancelled"),
    ],
)
def test_address_change_is_refused_once_the_order_left_processing(context, db, order_id, spoken):
    before = order_row(db, order_id)["delivery_address"]
    with pytest.raises(ToolRefused) as raised:
        change_delivery_address(context, order_id, "55 Water Street, Brooklyn, NY 11201")
    assert raised.value.code == "not_allowed"
    assert raised.value.spoken.startswith(spoken)
    assert order_row(db, order_id)["delivery_address"] == before
    assert shop.address_changes_for(db, order_id) == []


@pytest.mark.parametrize("address", ["", "   ", "Brooklyn", "x" * 201])
def test_an_unusable_address_is_invalid(context, address):
    with pytest.raises(ToolError) as raised:
        change_delivery_address(context, "7731", address)
    assert raised.value.code == "invalid_argument"
    assert not isinstance(raised.value, ToolRefused)


# --- through the tool interface ---------------------------------------------------------------


def test_tools_run_through_call_tool_with_their_schemas(context):
    handler, parameters, description = TOOLS["lookup_order"]
    assert call_tool(handler, context, {"order_id": "2208"})["status"] == "shipped"
    assert description
    for name, (handler, parameters, _) in TOOLS.items():
        assert handler.__name__ == name
        assert parameters["additionalProperties"] is False
        assert parameters["properties"]["order_id"]["pattern"] == "^[0-9]{4}$"
        assert set(parameters["required"]) <= set(parameters["properties"])
    assert TOOLS["issue_refund"].parameters["properties"]["amount"]["minimum"] == 0.01


def test_an_extra_argument_from_the_llm_is_invalid(context):
    with pytest.raises(ToolError) as raised:
        call_tool(issue_refund, context, {"order_id": "4512", "amount": 5})
    assert raised.value.code == "invalid_argument"


# --- spoken order numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4512", "4512"),
        ("#4512", "4512"),
        ("order 4512", "4512"),
        ("It's order number 4,512.", "4512"),
        ("4 5 1 2", "4512"),
        ("4-5-1-2", "4512"),
        ("45 12", "4512"),
        ("four five one two", "4512"),
        ("Four, five, one, two.", "4512"),
        ("forty-five twelve", "4512"),
        ("four thousand five hundred twelve", "4512"),
        ("four thousand five hundred and twelve", "4512"),
        ("forty five hundred twelve", "4512"),
        ("two two oh eight", "2208"),
        ("twenty-two oh eight", "2208"),
        ("twenty two hundred and eight", "2208"),
        ("seventy-seven thirty-one", "7731"),
        ("double seven three one", "7731"),
        ("seven seven three oh", "7730"),
        ("zero four five one", "0451"),
        ("Oh, it's four five one two.", "4512"),
        ("order 4512, 3 items", "4512"),
        ("I ordered 2 mugs, order 4512", "4512"),
        (4512, "4512"),
        ("my order", None),
        ("123", None),
        ("12345", None),
        ("one two three", None),
        ("4512 and 7731", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_order_number(text, expected):
    assert normalize_order_number(text) == expected
