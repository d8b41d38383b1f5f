"""The closed sets of values that the store keeps in string columns, as `StrEnum`s: a
member is its stored string ("agent_edited" is `PairOrigin.AGENT_EDITED`), so rows,
CHECK constraints and migrations read the same as with bare strings, and a misspelt
member is an error instead of a silent new state.

Names only, no SQLAlchemy: anything may import this module cheaply. Which column holds
which set is `chatbot.store.schema`'s (and its sibling schema modules') job.
"""

from __future__ import annotations

from enum import StrEnum


class PairOrigin(StrEnum):
    """Where a training pair came from (`training_pairs.origin`)."""

    IMPORTED = "imported"  # read from an imported transcript
    AGENT_APPROVED = "agent_approved"  # a suggestion an agent approved as it was
    AGENT_EDITED = "agent_edited"  # a suggestion an agent corrected (or wrote) before sending


class ReviewState(StrEnum):
    """Where a suggested reply is in the agents' review (`dialogue_replies.review_status`;
    NULL there: a reply that needs no review)."""

    PENDING = "pending"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"


class AgentActionKind(StrEnum):
    """What happened to a conversation at an agent's hand (`agent_actions.action`): a
    decision on a suggested reply, the agent's own message, or a change of who is in
    charge."""

    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"
    REPLY = "reply"
    TAKE_OVER = "take_over"
    HAND_BACK = "hand_back"
    RELEASE = "release"


class OrderStatus(StrEnum):
    """Where an order is (`orders.status`); what a customer may do depends on it."""

    PROCESSING = "processing"  # not yet dispatched: can still be changed or cancelled
    DISPATCHED = "dispatched"  # left the warehouse: tracking, refuse or return
    DELIVERED = "delivered"  # arrived: returns within the return window
    CANCELLED = "cancelled"  # cancelled before or in transit: refund
    RETURNED = "returned"  # sent back: refund after it arrives at the warehouse


def values(kind: type[StrEnum]) -> tuple[str, ...]:
    """The stored strings of a set, in declaration order (for CHECK constraints and
    command-line choices)."""
    return tuple(member.value for member in kind)
