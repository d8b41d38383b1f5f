"""The customer's own case: what a reply claims about an order, and what this
conversation has established about it.

A past answer written for one customer's order says where that order stood ("it hasn't
been dispatched yet, so it can still be cancelled", "it left our warehouse on Monday") or
what its agent did for it ("I've cancelled it", "I've opened an investigation"). Sent to
another customer, the first asserts a state nobody checked and the second promises an
action nobody took. `claimed_states` finds the first kind (a conditional, "once it has
been dispatched, ...", claims nothing), `promises_action` the second. The dialogue
manager sends a state claim only when this conversation established that state, through
the company's order system (`chatbot.orders`), and hands an action over to an agent,
with the order number attached, instead of promising it.

`Case` is what the conversation established: the order number the customer gave and the
order as the order system returned it (None: not found, or no system to ask). `status_line`
says it in words.

Where its job ends: it reads texts and an order; looking orders up is the connector's,
deciding what to send is the manager's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatbot.orders.records import Order, OrderStatus

# Words before a state that make it a condition, not a claim ("once it has been dispatched").
_CONDITION = re.compile(
    r"\b(if|once|when|whether|after|until|unless|as soon as|before|while)\b[^.!?;:]*$",
    re.IGNORECASE,
)
_SUBJECT = r"(?:the\ order|your\ order|the\ parcel|your\ parcel|the\ package|it|it's|it’s|this\ order|the\ item|your\ item|{order_number}|NW-\d+)"
_STATES: dict[OrderStatus, re.Pattern[str]] = {
    OrderStatus.PROCESSING: re.compile(
        rf"""(?ix)
        \b(?:is|'s|are)\ still\ (?:in\ )?processing\b
      | \bstill\ possible\ because\b
      | \b(?:hasn't|has\ not|haven't|isn't|is\ not|wasn't)\ (?:yet\ )?(?:been\ )?(?:dispatched|shipped|sent|left)\b
      | \bnot\ (?:been\ )?(?:dispatched|shipped)\ yet\b
      | \b{_SUBJECT}\ is\ (?:still\ )?(?:in\ )?processing\b
        """
    ),
    OrderStatus.DISPATCHED: re.compile(
        rf"""(?ix)
        \b(?:has|have|'s|is|was)\ (?:already\ |now\ |just\ )?(?:been\ )?(?:dispatched|shipped)\b
      | \b(?:already|now)\ (?:on\ its\ way|in\ transit)\b
      | \b{_SUBJECT}\ (?:is|'s)\ (?:already\ |now\ )?(?:on\ its\ way|in\ transit|with\ the\ carrier)\b
      | (?<!n't\ )(?<!not\ )(?<!never\ )\bleft\ (?:our|the)\ warehouse\b
        """
    ),
    OrderStatus.DELIVERED: re.compile(
        rf"""(?ix)
        \b{_SUBJECT}\ (?:was|has\ been|is)\ (?:already\ )?delivered\b
      | \b(?:has|have)\ (?:already\ )?arrived\b
        """
    ),
    OrderStatus.CANCELLED: re.compile(
        rf"""(?ix)
        \b{_SUBJECT}\ (?:is|was|has\ been)\ (?:now\ )?cancell?ed\b
      | \bdone,?\ the\ order\ is\ cancell?ed\b
        """
    ),
    OrderStatus.RETURNED: re.compile(
        r"""(?ix)
        \b(?:return|refund)\ (?:has|have)\ (?:already\ |now\ )?(?:been\ )?(?:arrived|received|processed|issued|sent)\b
      | \byour\ return\ (?:for\ \S+\ )?arrived\b
      | \b(?:has|have)\ been\ refunded\b
        """
    ),
}
# What an agent says it did or will do for one case ("I've cancelled it", "I can cancel it for you").
_ACTION = re.compile(
    r"""(?ix)
    \bI(?:'ve|\ have|\ just)?\ (?:asked|changed|cancell?ed|refunded|updated|arranged|contacted
        |opened|forwarded|escalated|resent|re-sent|booked|credited|corrected|requested|reported|issued)\b
  | \bI\ can\ (?:cancel|change|update|refund|resend|re-send|arrange|add|remove)\b[^.?!]*\bfor\ you\b
  | \bshall\ I\ (?:go\ ahead|cancel|change|do\ that)\b
  | \bwould\ you\ like\ me\ to\b
  | \bI'll\ (?:cancel|change|update|refund|resend|arrange|open|check|ask|contact|escalate)\b
  | \bwe'll\ (?:open|start)\ (?:a\ )?(?:carrier\ )?investigation\b
    """
)


def claimed_states(text: str) -> set[OrderStatus]:
    """The order states the text asserts of an order (conditions excluded)."""
    found: set[OrderStatus] = set()
    for status, pattern in _STATES.items():
        for match in pattern.finditer(text or ""):
            if not _CONDITION.search(text[max(0, match.start() - 60) : match.start()]):
                found.add(status)
                break
    return found


def promises_action(text: str) -> bool:
    """The text says an agent did, or offers to do, something for one case."""
    return bool(_ACTION.search(text or ""))


@dataclass(frozen=True)
class Case:
    """An order this conversation named, and what the order system said of it
    (`order` None: not found; `looked_up` False: no system could be asked)."""

    number: str
    order: Order | None
    looked_up: bool

    @property
    def status(self) -> OrderStatus | None:
        return self.order.status if self.order is not None else None

    def allows(self, text: str) -> bool:
        """The text asserts no state other than the one established."""
        claims = claimed_states(text)
        return not claims or (self.status is not None and claims == {self.status})


def not_found_message(number: str) -> str:
    """What the customer is told when the order system has no order by that number."""
    return (
        f"I couldn't find an order {number}. Could you check the number in your order "
        "confirmation e-mail?"
    )


def status_line(order: Order) -> str:
    """The order's state in words, for the customer who gave its number."""
    day = "%-d %B"
    if order.status is OrderStatus.PROCESSING:
        return (
            f"I've found order {order.number}: it's still being processed and hasn't left "
            "our warehouse yet."
        )
    if order.status is OrderStatus.DISPATCHED:
        when = f" on {order.dispatched_at.strftime(day)}" if order.dispatched_at else ""
        track = f" You can follow it here: {order.tracking_url}" if order.tracking_url else ""
        return f"I've found order {order.number}: it was dispatched{when} and is on its way.{track}"
    if order.status is OrderStatus.DELIVERED:
        when = f" on {order.delivered_at.strftime(day)}" if order.delivered_at else ""
        return f"I've found order {order.number}: it was delivered{when}."
    if order.status is OrderStatus.CANCELLED:
        return f"I've found order {order.number}: it has been cancelled."
    return f"I've found order {order.number}: it has been returned."
