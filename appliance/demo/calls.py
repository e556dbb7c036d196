"""The scripted demo calls to Acme and how each one's goal is checked.

Each script is what a caller says and when (one interrupts the agent mid-sentence); the goal
is checked on the outcome the appliance stored, never on what the agent merely said.
"""

from dataclasses import dataclass

from parley.appliance.demo.shop import refunds_for
from parley.appliance.media.file_channel import CallerLine


@dataclass(frozen=True)
class DemoCall:
    name: str
    description: str
    lines: tuple


REFUND = DemoCall(
    "refund",
    "a caller gets a refund for a broken kettle on order 4512",
    (
        CallerLine("Hi. I want a refund on order four five one two, please. The kettle I got is broken."),
        CallerLine("Yes, please go ahead.", pause_ms=800),
        CallerLine("No thank you, that's all. Goodbye.", pause_ms=800),
    ),
)

ESCALATION = DemoCall(
    "escalation",
    "an angry caller cuts the greeting short and asks for a person",
    (
        CallerLine("Stop. I have called three times about my order and nobody fixes it. "
                   "I want to talk to a real person, right now!", interrupt_after_ms=2200),
    ),
)

CALLS = (REFUND, ESCALATION)


def check_goal(call, session, store, shop_db):
    """(reached, explanation) for a finished demo call, from the store and the shop database."""
    stored = store.call(session.call_id)
    if call is REFUND:
        refunds = [r for r in refunds_for(shop_db, "4512") if r.get("call_id") == session.call_id]
        if not refunds:
            return False, "no refund on order 4512 was recorded by this call"
        if stored.outcome != "completed":
            return False, f"a refund was made but the call ended {stored.outcome}, not completed"
        amount = sum(r["amount_cents"] for r in refunds) / 100
        return True, f"refunded {amount:.2f} dollars on order 4512; call completed"
    handoffs = store.handoffs(session.call_id)
    if not handoffs:
        return False, "no hand-off record was stored"
    if handoffs[0].reason.startswith("technical problem"):
        return False, f"the call was handed off because the appliance failed: {handoffs[0].reason}"
    if not handoffs[0].summary.strip():
        return False, "the hand-off record has no summary"
    interrupted = [t for t in store.turns(session.call_id) if t.interrupted]
    if not interrupted:
        return False, "the caller's interruption was not recorded as a barge-in"
    return True, (f"handed off ({handoffs[0].reason}); summary: {handoffs[0].summary}; "
                  f"greeting cut after {interrupted[0].heard_text!r}")
