"""Analytics over a hand-built store with known timestamps, on SQLite and PostgreSQL:
every figure is checked against numbers worked out by hand, the period filter, that
imported history never counts, an empty store, and the admin console's Analytics tab.

The shop (all times 2024-05, UTC; "period" = 10th to 12th May, both days included):

  C1 10th 09:00  answered twice (2 s, 4 s), thumbs up; alice approves the flagged answer
                 afterwards (a review of an answer already sent: still automated) -> automated
  C2 10th 11:00  answered (1 s); "loop: asked 3 times" hand-off (notice 3 s); an agent
                 message 5 min later; handed back; "low_confidence" hand-off (2 s),
                 handed back again without an agent message; thumbs down          -> loop
  C3 11th 08:00  "out_of_scope: past answers are labelled billing" (5 s); a customer
                 message while a human is in charge (silent); agent reply 20 min later
                 after the hand-off; thumbs up on it                              -> out_of_scope
  C4 11th 09:00  "out_of_scope" (1 s); nobody has answered yet                    -> out_of_scope
  C5 12th 10:00  held (hold notice 2 s), bob approves it and it is sent as an agent
                 message; a flagged answer (3 s) that bob rejects                 -> human, no hand-off
  C6 12th 12:00  a customer message the assistant never replied to
  C7 12th 13:00  "talk to a person" button: handed_off_at 13:00:30, no reply record; an
                 agent message 2 min later                                        -> customer_asked_for_human
  outside: C8 9th 10:00 (answered in 10 s, thumbs down, alice edits the flagged answer and
           her correction is sent), C9 13th 00:00:00 (low_confidence hand-off: the period excludes its end)
  imported: C10 11th 10:00 with a hand-off reply, an agent message, a thumbs up and an
           approval, none of which may count.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from chatbot import analytics as an
from chatbot.errors import InputError
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message
from chatbot.store.support_schema import AgentAction, Feedback

PERIOD = an.between(date(2024, 5, 10), date(2024, 5, 12))


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


class ShopBuilder:
    """Rows inserted directly, with the timestamps the test says."""

    def __init__(self, session):
        self.session = session
        self.turns: dict[int, int] = {}

    def conversation(self, created: datetime, *, channel: str = "live", **columns) -> Conversation:
        row = Conversation(
            source="test", channel=channel, created_at=created, updated_at=created, **columns
        )
        self.session.add(row)
        self.session.flush()
        return row

    def message(
        self, conversation: Conversation, role: str, when: datetime, text: str = "hello"
    ) -> Message:
        turn = self.turns.get(conversation.id, 0)
        self.turns[conversation.id] = turn + 1
        row = Message(
            conversation_id=conversation.id, turn_index=turn, role=role, text=text, created_at=when
        )
        self.session.add(row)
        self.session.flush()
        return row

    def exchange(
        self,
        conversation: Conversation,
        asked: datetime,
        decision: str,
        reason: str,
        replied_after: float | None,
        *,
        review_status: str | None = None,
    ) -> tuple[Message, DialogueReply, Message | None]:
        """A customer message, the assistant's record of it and (after `replied_after`
        seconds) the bot message shown in reply."""
        customer = self.message(conversation, "customer", asked, "a question")
        bot = None
        if replied_after is not None:
            bot = self.message(
                conversation, "bot", asked + timedelta(seconds=replied_after), "a reply"
            )
        record = DialogueReply(
            conversation_id=conversation.id,
            message_id=customer.id,
            reply_message_id=bot.id if bot else None,
            decision=decision,
            reason=reason,
            text="a reply",
            shown_text="a reply" if bot else "",
            sent=bot is not None and decision != "held",
            review_status=review_status,
            created_at=asked + timedelta(seconds=replied_after or 0),
        )
        self.session.add(record)
        self.session.flush()
        return customer, record, bot

    def action(
        self,
        conversation: Conversation,
        action: str,
        when: datetime,
        username: str,
        *,
        reply: DialogueReply | None = None,
        message: Message | None = None,
    ) -> None:
        self.session.add(
            AgentAction(
                conversation_id=conversation.id,
                reply_id=reply.id if reply else None,
                username=username,
                action=action,
                message_id=message.id if message else None,
                created_at=when,
            )
        )
        self.session.flush()

    def feedback(
        self,
        conversation: Conversation,
        message: Message,
        rating: int,
        when: datetime,
        comment: str | None = None,
    ) -> None:
        self.session.add(
            Feedback(
                conversation_id=conversation.id,
                message_id=message.id,
                rating=rating,
                comment=comment,
                created_at=when,
            )
        )
        self.session.flush()


def build_shop(database) -> None:
    with database.session() as session:
        b = ShopBuilder(session)

        c1 = b.conversation(at(10, 9))
        _, _, bot = b.exchange(c1, at(10, 9), "answer", "confident: retrieved won", 2)
        _, flagged, shown = b.exchange(
            c1,
            at(10, 9, 1),
            "answer_flagged",
            "needs_review: draft won",
            4,
            review_status="approved",
        )
        b.feedback(c1, bot, 1, at(10, 9, 2))
        # Approving what the customer already has sends nothing; the action points at the bot's message.
        b.action(c1, "approve", at(10, 10), "alice", reply=flagged, message=shown)

        c2 = b.conversation(
            at(10, 11),
            state="open",
            handoff_reason="low_confidence",
            handed_off_at=at(10, 11, 20, 1),
        )
        _, _, bot = b.exchange(c2, at(10, 11), "answer", "confident: retrieved won", 1)
        b.exchange(c2, at(10, 11, 2), "handoff", "loop: asked 3 times", 3)
        b.action(c2, "take_over", at(10, 11, 5), "alice")
        b.message(c2, "agent", at(10, 11, 7))
        b.action(c2, "hand_back", at(10, 11, 10), "alice")
        b.exchange(c2, at(10, 11, 20), "handoff", "low_confidence", 2)
        b.action(c2, "hand_back", at(10, 11, 30), "alice")
        b.feedback(c2, bot, -1, at(10, 11, 3))

        c3 = b.conversation(
            at(11, 8),
            state="handed_off",
            handoff_reason="out_of_scope: past answers are labelled billing",
            handed_off_at=at(11, 8, 0, 6),
        )
        b.exchange(c3, at(11, 8), "handoff", "out_of_scope: past answers are labelled billing", 5)
        b.exchange(c3, at(11, 8, 3), "silent", "human_in_charge", None)
        agent_reply = b.message(c3, "agent", at(11, 8, 20))
        b.action(c3, "reply", at(11, 8, 20), "bob", message=agent_reply)
        b.feedback(c3, agent_reply, 1, at(11, 8, 25))

        c4 = b.conversation(
            at(11, 9),
            state="handed_off",
            handoff_reason="out_of_scope",
            handed_off_at=at(11, 9, 0, 1),
        )
        b.exchange(c4, at(11, 9), "handoff", "out_of_scope", 1)

        c5 = b.conversation(at(12, 10))
        _, held, _ = b.exchange(
            c5, at(12, 10), "held", "needs_review: draft won", 2, review_status="approved"
        )
        sent = b.message(c5, "agent", at(12, 10, 4))
        b.action(c5, "approve", at(12, 10, 4), "bob", reply=held, message=sent)
        _, flagged, _ = b.exchange(
            c5,
            at(12, 10, 5),
            "answer_flagged",
            "needs_review: draft won",
            3,
            review_status="rejected",
        )
        b.action(c5, "reject", at(12, 10, 6), "bob", reply=flagged)

        c6 = b.conversation(at(12, 12))
        b.message(c6, "customer", at(12, 12))

        c7 = b.conversation(
            at(12, 13),
            state="handed_off",
            handoff_reason="customer_asked_for_human",
            handed_off_at=at(12, 13, 0, 30),
        )
        b.message(c7, "customer", at(12, 13))
        b.message(c7, "agent", at(12, 13, 2, 30))

        c8 = b.conversation(at(9, 10))
        _, flagged, bot = b.exchange(
            c8, at(9, 10), "answer_flagged", "needs_review: draft won", 10, review_status="edited"
        )
        b.feedback(c8, bot, -1, at(9, 10, 1))
        correction = b.message(c8, "agent", at(9, 10, 2))
        b.action(c8, "edit", at(9, 10, 2), "alice", reply=flagged, message=correction)

        c9 = b.conversation(
            at(13, 0),
            state="handed_off",
            handoff_reason="low_confidence",
            handed_off_at=at(13, 0, 0, 1),
        )
        b.exchange(c9, at(13, 0), "handoff", "low_confidence", 1)

        c10 = b.conversation(
            at(11, 10),
            channel="import",
            state="handed_off",
            handoff_reason="out_of_scope",
            handed_off_at=at(11, 10),
        )
        _, record, bot = b.exchange(c10, at(11, 10), "handoff", "out_of_scope", 1)
        b.message(c10, "agent", at(11, 10, 5))
        b.feedback(c10, bot, 1, at(11, 10, 6))
        b.action(c10, "approve", at(11, 10, 6), "carol", reply=record)


def compute(database, period):
    with database.session() as session:
        return an.compute_analytics(session=session, period=period)


@pytest.fixture
def shop(migrated_database):
    build_shop(migrated_database)
    return migrated_database


def test_every_figure_of_the_period(shop):
    result = compute(shop, PERIOD)

    assert result.conversations == 7
    assert result.automated == an.Rate(1, 7)  # C1 only
    assert result.handed_off == an.Rate(4, 7)  # C2, C3, C4, C7
    assert [(r.reason, r.handoffs) for r in result.handoff_reasons] == [
        ("out_of_scope", an.Rate(2, 7)),
        ("customer_asked_for_human", an.Rate(1, 7)),
        ("loop", an.Rate(1, 7)),  # its first hand-off, not the later low_confidence one
    ]

    assert (result.approved, result.edited, result.rejected) == (
        an.Rate(2, 3),
        an.Rate(0, 3),
        an.Rate(1, 3),
    )
    assert result.decisions == 3
    assert result.decisions_by_agent == [
        an.AgentDecisions("bob", 1, 0, 1),
        an.AgentDecisions("alice", 1, 0, 0),
    ]

    assert result.thumbs_up == an.Rate(2, 3)

    # 1, 1, 2, 2, 2, 3, 3, 4, 5 seconds: median the 5th; p95 at rank 7.6 -> 4 + 0.6 * (5 - 4)
    assistant = result.assistant_first_reply
    assert assistant.n == 9
    assert assistant.median == pytest.approx(2.0)
    assert assistant.p95 == pytest.approx(4.6)

    # C7 120 s (from handed_off_at), C2 300 s, C3 1200 s; p95 at rank 1.9 -> 300 + 0.9 * 900
    human = result.human_first_reply
    assert human.n == 3
    assert human.median == pytest.approx(300.0)
    assert human.p95 == pytest.approx(1110.0)
    assert (
        result.human_unanswered == 2
    )  # C4 still waiting; C2's second hand-off handed back unanswered

    assert result.daily == [
        an.DayCounts(date(2024, 5, 10), 2, 1, 1),
        an.DayCounts(date(2024, 5, 11), 2, 2, 0),
        an.DayCounts(date(2024, 5, 12), 3, 1, 0),
    ]


def test_a_thumbs_down_or_no_real_answer_is_no_automated_resolution(migrated_database):
    """D1 answered, thumbs-down with a comment; D2 answered, thumbs-down on its greeting;
    D3 only a greeting answered; D4 only a decline; D5 only a clarifying question; D6 a
    greeting and an answer with a thumbs-up: only D6 is an automated resolution. Every
    reply, greetings, declines and clarifying questions included, is a first reply."""
    with migrated_database.session() as session:
        b = ShopBuilder(session)
        d1 = b.conversation(at(10, 9))
        _, _, answer = b.exchange(d1, at(10, 9), "answer", "confident: retrieved won", 2)
        b.feedback(d1, answer, -1, at(10, 9, 1), comment="that is not my order")
        d2 = b.conversation(at(10, 10))
        _, _, hello = b.exchange(d2, at(10, 10), "act", "act: greeting", 1)
        b.exchange(d2, at(10, 10, 1), "answer", "confident: draft won", 3)
        b.feedback(d2, hello, -1, at(10, 10, 2))
        d3 = b.conversation(at(11, 9))
        b.exchange(d3, at(11, 9), "act", "act: thanks", 1)
        d4 = b.conversation(at(11, 10))
        b.exchange(d4, at(11, 10), "decline", "out_of_domain: not the shop's kind", 2)
        d5 = b.conversation(at(12, 9))
        b.exchange(d5, at(12, 9), "clarify", "unsure: 2 topics", 4)
        d6 = b.conversation(at(12, 10))
        b.exchange(d6, at(12, 10), "act", "act: greeting", 1)
        _, _, answer = b.exchange(d6, at(12, 10, 1), "answer", "confident: retrieved won", 2)
        b.feedback(d6, answer, 1, at(12, 10, 2))

    result = compute(migrated_database, PERIOD)
    assert result.conversations == 6
    assert result.automated == an.Rate(1, 6)  # D6 only
    assert result.handed_off == an.Rate(0, 6)
    assert [(d.day.day, d.conversations, d.automated) for d in result.daily] == [
        (10, 2, 0),
        (11, 2, 0),
        (12, 2, 1),
    ]
    assert result.thumbs_up == an.Rate(1, 3)
    # 1, 1, 1, 2, 2, 2, 3, 4 seconds: median 2; p95 at rank 6.65 -> 3 + 0.65 * (4 - 3)
    assistant = result.assistant_first_reply
    assert assistant.n == 8
    assert assistant.median == pytest.approx(2.0)
    assert assistant.p95 == pytest.approx(3.65)


def test_all_time_counts_the_conversations_outside_the_period_and_never_imports(shop):
    result = compute(shop, an.all_time())
    assert result.conversations == 9  # C1-C9; the imported C10 never counts
    assert result.automated == an.Rate(
        1, 9
    )  # C1; C8's edit sent the customer an agent's correction
    assert result.handed_off == an.Rate(5, 9)
    assert [(r.reason, r.handoffs.count) for r in result.handoff_reasons] == [
        ("out_of_scope", 2),
        ("customer_asked_for_human", 1),
        ("loop", 1),
        ("low_confidence", 1),
    ]
    assert (result.approved.count, result.edited.count, result.rejected.count) == (2, 1, 1)
    assert result.thumbs_up == an.Rate(2, 4)
    assert result.assistant_first_reply.n == 11  # + C8's 10 s and C9's 1 s
    assert result.human_first_reply.n == 3
    assert result.human_unanswered == 3  # + C9
    assert [d.day for d in result.daily] == [date(2024, 5, d) for d in (9, 10, 11, 12, 13)]


def test_period_edges(shop):
    # The end is excluded: C9 (13th 00:00:00) is not on the 12th.
    assert compute(shop, an.between(date(2024, 5, 12), date(2024, 5, 12))).conversations == 3
    assert compute(shop, an.between(date(2024, 5, 13), None)).conversations == 1
    # The start is included, to the second.
    one_second = an.Period(at(12, 13), at(12, 13, 0, 1), "one second")
    result = compute(shop, one_second)
    assert result.conversations == 1 and result.handed_off == an.Rate(1, 1)
    assert result.human_first_reply.n == 0  # C7's hand-off began at 13:00:30
    assert compute(shop, an.Period(at(12, 13, 0, 30), at(12, 13, 1), "x")).human_first_reply.n == 1


def test_daily_series_pads_the_days_without_conversations(shop):
    result = compute(shop, an.between(date(2024, 5, 7), date(2024, 5, 10)))
    assert result.daily == [
        an.DayCounts(date(2024, 5, 7), 0, 0, 0),
        an.DayCounts(date(2024, 5, 8), 0, 0, 0),
        an.DayCounts(date(2024, 5, 9), 1, 0, 0),
        an.DayCounts(date(2024, 5, 10), 2, 1, 1),
    ]


def test_last_period_is_relative_to_now(shop):
    period = an.last(hours=24, now=at(12, 14))
    assert period.start == at(11, 14) and period.end == at(12, 14)
    assert compute(shop, period).conversations == 3
    assert compute(shop, an.last(days=7, now=at(12, 14))).conversations == 8  # C1-C8
    assert an.last(days=30).label == "last 30 days"


def test_empty_store_gives_zeros_and_no_data(migrated_database):
    result = compute(migrated_database, an.all_time())
    assert result.conversations == 0
    for rate in (
        result.automated,
        result.handed_off,
        result.approved,
        result.edited,
        result.rejected,
        result.thumbs_up,
    ):
        assert rate.total == 0 and rate.value is None
    assert result.assistant_first_reply == an.Durations(0, None, None)
    assert result.human_first_reply == an.Durations(0, None, None)
    assert result.handoff_reasons == [] and result.daily == [] and result.human_unanswered == 0
    # A bounded period still has its days, all empty.
    padded = compute(migrated_database, PERIOD).daily
    assert [(d.day.day, d.conversations) for d in padded] == [(10, 0), (11, 0), (12, 0)]


@pytest.mark.parametrize(
    "reason, group",
    [
        ("loop: asked 3 times", "loop"),
        ("out_of_scope: past answers are labelled billing", "out_of_scope"),
        ("out_of_scope", "out_of_scope"),
        ("past answers hand off (returns)", "past answers hand off"),
        ("customer_asked_for_human", "customer_asked_for_human"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_reason_groups(reason, group):
    assert an.reason_group(reason) == group


def test_quantiles_match_numpy_linear():
    assert an.Durations.of([5.0]) == an.Durations(1, 5.0, 5.0)
    assert an.Durations.of([4, 1, 3, 2]) == an.Durations(4, 2.5, pytest.approx(3.85))
    assert an.quantile(list(range(101)), 0.95) == pytest.approx(95.0)


def test_bad_periods_are_refused():
    with pytest.raises(InputError, match="before the start date"):
        an.between(date(2024, 5, 2), date(2024, 5, 1))
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        an.parse_day("12/05/2024", what="start")
    with pytest.raises(InputError, match="longer than zero"):
        an.last(days=0)
    assert an.parse_day(" 2024-05-01 ", what="start") == date(2024, 5, 1)
    assert an.parse_day("", what="start") is None
    # An aware time in another zone is the same instant in UTC.
    berlin = timezone(timedelta(hours=2))
    assert an.Period(datetime(2024, 5, 1, 2, tzinfo=berlin), None, "x").start == datetime(
        2024, 5, 1, tzinfo=UTC
    )


# -- the admin console's tab -------------------------------------------------------------


def _services(settings, database):
    from chatbot.web.services import Services

    return Services(settings, database, manager=None)  # analytics never asks the assistant


def test_tab_builds_and_its_refresh_returns_the_table_and_plots(settings, sqlite_database):
    import gradio as gr

    from chatbot.accounts.users import add_user
    from chatbot.ui.admin_analytics import ALL_TIME, BETWEEN_DATES, PERIOD_CHOICES, analytics_tab

    build_shop(sqlite_database)
    with gr.Blocks() as demo:
        with gr.Tab("Analytics"):
            tab = analytics_tab(_services(settings, sqlite_database))
    elem_ids = {
        tab.period.elem_id,
        tab.refresh_button.elem_id,
        tab.numbers.elem_id,
        tab.daily.elem_id,
        tab.reasons.elem_id,
    }
    assert elem_ids == {
        "analytics-period",
        "analytics-refresh",
        "analytics-numbers",
        "analytics-daily",
        "analytics-reasons",
    }
    assert list(tab.period.choices) == [(c, c) for c in PERIOD_CHOICES]
    # Filled on page load, on Refresh and when the period changes.
    triggers = {(target[0], target[1]) for fn in demo.fns.values() for target in fn.targets}
    assert (demo._id, "load") in triggers
    assert (tab.refresh_button._id, "click") in triggers and (tab.period._id, "change") in triggers
    # Typing a date switches the period to "between dates".
    assert (tab.first._id, "change") in triggers and (tab.final._id, "change") in triggers
    # The line plot starts with every series, so the browser draws all three later.
    assert set(tab.daily.value["data"][i][1] for i in range(3)) == set(an.DAILY_SERIES)

    from gradio.utils import get_type_hints

    assert (
        get_type_hints(tab.refresh)["request"] is gr.Request
    )  # Gradio hands the handler the request
    add_user(sqlite_database, "ada", "a-long-password-1", "admin")
    add_user(sqlite_database, "bob", "a-long-password-2", "agent")
    for caller in (
        SimpleNamespace(username=None),
        SimpleNamespace(username="bob"),
        SimpleNamespace(username="eve"),
    ):
        refused, daily, reasons = tab.refresh(ALL_TIME, None, None, caller)
        assert refused.startswith("**Refused:**") and daily.empty and reasons.empty

    numbers, daily, reasons = tab.refresh(
        BETWEEN_DATES, "2024-05-10", "2024-05-12", SimpleNamespace(username="ada")
    )
    assert "| Conversations | 7 |" in numbers
    assert "| Automated resolution | 14.3% (1 of 7) |" in numbers
    assert "| Hand-off rate | 57.1% (4 of 7) |" in numbers
    assert "| · out\\_of\\_scope | 28.6% (2 of 7) |" in numbers
    assert "| Agents approved | 66.7% (2 of 3) |" in numbers
    assert "| Thumbs-up ratio | 66.7% (2 of 3) | 2 up, 1 down |" in numbers
    assert "| Assistant | 2.0 s | 4.6 s | 9 |" in numbers
    assert "| Humans | 5 min 0 s | 18 min 30 s | 3 (2 hand-offs unanswered) |" in numbers
    assert "| bob | 1 | 0 | 1 | 2 |" in numbers
    assert (
        "Automated resolution" in numbers.split("What the figures mean")[1]
    )  # definitions under the numbers

    assert len(daily) == 9  # 3 days x 3 series
    assert daily[daily["series"] == "hand-offs"]["count"].tolist() == [1, 2, 1]
    assert reasons.to_dict("records") == [
        {"reason": "out_of_scope", "hand-offs": 2},
        {"reason": "customer_asked_for_human", "hand-offs": 1},
        {"reason": "loop", "hand-offs": 1},
    ]
    # What the plots send to the browser.
    plotted = tab.daily.postprocess(daily)
    assert plotted.datatypes == {"day": "temporal", "series": "nominal", "count": "quantitative"}
    assert plotted.data[0][0] == int(at(10, 0).timestamp() * 1000)
    assert tab.reasons.postprocess(reasons).datatypes == {
        "reason": "nominal",
        "hand-offs": "quantitative",
    }


def test_tab_on_an_empty_store_and_with_bad_dates(settings, sqlite_database):
    from chatbot.ui.admin_analytics import ALL_TIME, BETWEEN_DATES, LAST_7_DAYS, refresh_analytics

    services = _services(settings, sqlite_database)
    numbers, daily, reasons = refresh_analytics(services, ALL_TIME)
    assert "| Conversations | 0 |" in numbers
    assert "| Automated resolution | no data (n = 0) |" in numbers
    assert "| Assistant | no data | — | 0 |" in numbers
    assert daily.empty and reasons.empty
    import gradio as gr

    # Empty frames still make valid plot payloads.
    assert gr.LinePlot(x="day", y="count").postprocess(daily).data == []
    assert gr.BarPlot(x="reason", y="hand-offs").postprocess(reasons).data == []

    numbers, daily, _ = refresh_analytics(services, LAST_7_DAYS, now=at(12, 14))
    assert len(daily) == 8 * 3  # 5th 14:00 to 12th 14:00 touches eight days

    numbers, daily, reasons = refresh_analytics(services, BETWEEN_DATES, "2024-05-12", "2024-05-10")
    assert numbers.startswith("**Cannot show analytics:**") and "before the start date" in numbers
    assert daily.empty and reasons.empty
    assert "unknown period" in refresh_analytics(services, "Last century")[0]
    numbers, _, _ = refresh_analytics(services, BETWEEN_DATES, "<b>soon</b>", "")
    assert "<b>" not in numbers and "&lt;b&gt;soon&lt;/b&gt;" in numbers


def test_strings_from_the_store_are_shown_as_text():
    from chatbot.ui.admin_analytics import md_text, numbers_markdown

    assert md_text("<script>alert(1)</script>") == "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"
    assert md_text("a|b*c*\nd") == "a\\|b\\*c\\* d"
    result = an.Analytics(
        period=an.all_time(),
        conversations=1,
        automated=an.Rate(0, 1),
        handed_off=an.Rate(1, 1),
        handoff_reasons=[an.ReasonCount("<img src=x onerror=alert(1)>", an.Rate(1, 1))],
        approved=an.Rate(1, 1),
        edited=an.Rate(0, 1),
        rejected=an.Rate(0, 1),
        decisions_by_agent=[an.AgentDecisions("<b>eve</b>|", 1, 0, 0)],
        thumbs_up=an.Rate(0, 0),
        assistant_first_reply=an.Durations(0, None, None),
        human_first_reply=an.Durations(0, None, None),
        human_unanswered=1,
    )
    text = numbers_markdown(result)
    assert "<img" not in text and "<b>" not in text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in text and "&lt;b&gt;eve&lt;/b&gt;\\|" in text
