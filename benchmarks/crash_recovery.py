"""Crash recovery under load: `chatbot serve` is killed with SIGKILL while customers chat,
restarted, and the store is checked for what a crash used to leave behind.

    .venv/bin/python benchmarks/crash_recovery.py                   # 40 customers, tiny models
    .venv/bin/python benchmarks/crash_recovery.py --models real     # the shipped models (slower)
    .venv/bin/python benchmarks/crash_recovery.py --customers 8 --no-save   # a smoke run

The customers speak the widget's own HTTP protocol (`load_widget.WidgetClient`), each
sending its messages one after the other. Once `--kill-after` messages were answered and
the store holds at least one message that is being answered right now (stored, no reply
yet: what a crash strands; `--min-in-flight` of them), the whole server process group
gets SIGKILL. The server is
started again on the same port; after the recovery bound (`web.interrupted_after_seconds`,
set low here) and a few sweeps, the check counts:

- stranded: customer messages of the run in the store with no reply record, in a
  conversation not closed (goal 0: each got a reply or went to the agents);
- lost: messages whose send the server completed (the customer saw them in the chat)
  that are not in the store (goal 0);
- not taken: messages in flight when the server died that never reached the store (the
  customer's send failed before the store had it; the widget keeps such a message in the
  box for sending again);
- interrupted: conversations handed to the agents as "interrupted", and how many of
  those customers, opening the page again, see the notice with a person in charge.

Rates carry 95% bootstrap intervals over customers. Results are printed and saved to
benchmarks/results/crash_recovery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.load_widget import (  # noqa: E402
    DEFAULT_MODEL_CACHE,
    Plan,
    Sent,
    Stack,
    WidgetClient,
    chat_texts,
    machine,
    make_run_env,
    message_text,
    run_marker,
    send_message,
)
from benchmarks.results_file import save_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


@dataclass
class CrashPlan:
    customers: int = 40
    messages: int = 3
    kill_after: int = 40  # answered messages before the kill (then: once min_in_flight are)
    min_in_flight: int = 3  # messages being answered (stored, no reply) at the moment of the kill
    models: str = "tiny"
    interrupted_after_seconds: float = 8.0
    sweep_seconds: float = 1.0
    think_seconds: float = 0.3
    message_timeout: float = 120.0
    time_limit: float = 600.0
    seed: int = 0


def in_flight(database_url: str, run_id: str) -> int:
    """Customer messages of the run stored with no reply record yet."""
    from sqlalchemy import exists, func, select

    from chatbot.store.database import Database
    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.schema import Message

    database = Database(database_url)
    try:
        with database.session() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(
                        Message.role == "customer",
                        Message.text.like(run_marker(run_id)),
                        ~exists().where(DialogueReply.message_id == Message.id),
                    )
                )
                or 0
            )
    finally:
        database.dispose()


async def drive_and_kill(
    plan: CrashPlan, stack: Stack, run_id: str, report
) -> tuple[list[Sent], list[str], dict[str, Any]]:
    """Customers chat until the server is killed; returns what each sent, their tokens,
    and when and how the kill happened."""
    import httpx

    rng = __import__("random").Random(plan.seed)
    sent: list[Sent] = []
    tokens: list[str] = [""] * plan.customers
    answered = 0
    killed = asyncio.Event()
    kill: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=plan.customers * 2 + 20, max_keepalive_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=plan.message_timeout) as http:
        client = WidgetClient(http, stack.urls[0])
        await client.connect()

        async def customer(c: int) -> None:
            nonlocal answered
            session = uuid.uuid4().hex[:11]
            await asyncio.sleep(rng.random() * plan.think_seconds)
            loaded, _ = await client.call("load_page", [None], session, plan.message_timeout)
            tokens[c] = token = loaded["output"]["data"][0]
            for i in range(plan.messages):
                if killed.is_set():
                    return
                record = Sent(c, 0, 0, i, message_text(run_id, c, 0, i), token, time.monotonic())
                sent.append(record)
                await send_message(client, record, session, plan.message_timeout)
                if record.ok:
                    answered += 1
                await asyncio.sleep(rng.random() * plan.think_seconds)

        async def killer() -> None:
            while answered < plan.kill_after:
                await asyncio.sleep(0.05)
            # Kill while the store holds messages being answered: what a crash strands
            # (after 30 s, with whatever is being answered then, at least one).
            deadline = time.monotonic() + 30
            while True:
                pending = await asyncio.to_thread(in_flight, stack.database_url, run_id)
                if pending >= plan.min_in_flight or (pending and time.monotonic() > deadline):
                    break
                await asyncio.sleep(0.02)
            process = stack.processes[0]
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            kill.update(answered_before=answered, in_flight_seen=pending, at=time.monotonic())
            killed.set()
            report(f"killed the server (SIGKILL) with {pending} message(s) being answered")

        killing = asyncio.create_task(killer())
        try:
            await asyncio.wait_for(
                asyncio.gather(*(customer(c) for c in range(plan.customers))), plan.time_limit
            )
        except TimeoutError:
            kill["timed_out"] = True
        if not killing.done():  # every message answered before the kill point: kill now
            killing.cancel()
            os.killpg(stack.processes[0].pid, signal.SIGKILL)
            stack.processes[0].wait(timeout=30)
            kill.update(answered_before=answered, in_flight_seen=0, at=time.monotonic())
    return sent, tokens, kill


def restart(stack: Stack) -> float:
    """The server started again on the same port; returns the seconds until it answered."""
    port = int(stack.urls[0].rsplit(":", 1)[1])
    started = time.monotonic()
    stack.serve(port, stack.home / "serve-restart.log")
    return time.monotonic() - started


async def come_back(url: str, tokens: list[str], timeout: float) -> list[list[str]]:
    """Each customer opens the page again: the chat they see."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout) as http:
        client = WidgetClient(http, url)
        await client.connect()
        seen = []
        for token in tokens:
            loaded, _ = await client.call("load_page", [token], uuid.uuid4().hex[:11], timeout)
            seen.append(chat_texts(loaded))
        return seen


def check(database_url: str, sent: list[Sent], run_id: str) -> dict[str, Any]:
    """Per message: stored?, settled (a reply record)?, and per conversation: handed off
    as interrupted?"""
    from sqlalchemy import select

    from chatbot.store.database import Database
    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.schema import Conversation, Message
    from chatbot.support.customer import token_hash

    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(Message.text, Message.id, Conversation.state)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.role == "customer", Message.text.like(run_marker(run_id)))
            ).all()
            replies = {
                message_id: (decision, reason)
                for message_id, decision, reason in session.execute(
                    select(DialogueReply.message_id, DialogueReply.decision, DialogueReply.reason)
                )
            }
            interrupted = {
                h
                for (h,) in session.execute(
                    select(Conversation.access_token_hash).where(
                        Conversation.handoff_reason == "interrupted"
                    )
                )
            }
    finally:
        database.dispose()
    stored = {text: (message_id, state) for text, message_id, state in rows}
    per_message = []
    for record in sent:
        place = stored.get(record.text)
        reply = replies.get(place[0]) if place else None
        per_message.append(
            {
                "customer": record.customer,
                "ok": record.ok,
                "stored": place is not None,
                "settled": reply is not None,
                "closed": bool(place and place[1] == "closed"),
                "decision": reply[0] if reply else None,
                "reason": reply[1] if reply else None,
                "interrupted_conversation": token_hash(record.token) in interrupted,
            }
        )
    return {"messages": per_message, "interrupted_tokens": interrupted}


def rate_with_interval(flags_by_customer: dict[int, list[bool]], seed: int = 0) -> dict[str, Any]:
    """The share of True over all messages, with a 95% cluster-bootstrap interval that
    resamples customers (a customer's messages are not independent)."""
    from chatbot.evaluation.intervals import Resampler

    customers = [c for c, flags in flags_by_customer.items() for _ in flags]
    flags = [flag for flags in flags_by_customer.values() for flag in flags]
    resampler = Resampler.by_group(customers, resamples=2000, seed=seed)
    return {"count": sum(flags), "of": len(flags), "rate": resampler.mean(flags)}


def run(
    plan: CrashPlan,
    *,
    tiny_dirs: tuple[Path, Path] | None = None,
    model_cache: Path = DEFAULT_MODEL_CACHE,
    report=print,
) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    with ExitStack() as cleanup:
        home = Path(tempfile.mkdtemp(prefix="chatbot-crash-"))
        cleanup.callback(shutil.rmtree, home, ignore_errors=True)
        database_url = f"sqlite:///{home / 'chatbot.db'}"
        load_plan = Plan(customers=plan.customers, multi_tab_customers=0, models=plan.models)
        env = make_run_env(load_plan, home, database_url, model_cache, tiny_dirs)
        env.update(
            {
                "CHATBOT_WEB__INTERRUPTED_AFTER_SECONDS": str(plan.interrupted_after_seconds),
                "CHATBOT_WEB__RECOVERY_SWEEP_SECONDS": str(plan.sweep_seconds),
            }
        )
        stack = Stack(load_plan, home, env, database_url)
        cleanup.callback(stack.stop)
        started = time.monotonic()
        stack.start()
        report(
            f"ready in {time.monotonic() - started:.0f} s on {stack.urls[0]} ({plan.models} models)"
        )
        sent, tokens, kill = asyncio.run(drive_and_kill(plan, stack, run_id, report))
        stranded_at_kill = in_flight(database_url, run_id)
        restart_seconds = restart(stack)
        report(
            f"restarted in {restart_seconds:.1f} s; {stranded_at_kill} message(s) without a reply"
        )
        # The recovery bound, counted from the kill, and a few sweeps after it.
        wait = plan.interrupted_after_seconds + 3 * plan.sweep_seconds + 1
        time.sleep(max(0.0, kill["at"] + wait - time.monotonic()))
        found = check(database_url, sent, run_id)
        seen = asyncio.run(come_back(stack.urls[0], [t for t in tokens if t], plan.message_timeout))
        from chatbot.support.customer import token_hash
        from chatbot.web_settings import DEFAULT_INTERRUPTED_MESSAGE

        notice = DEFAULT_INTERRUPTED_MESSAGE.split(".")[0]
        shown_notice = {
            token_hash(t): bool(chat) and notice in chat[-1]
            for t, chat in zip([t for t in tokens if t], seen, strict=True)
        }
        messages = found["messages"]
        by_customer = lambda key: {  # noqa: E731
            c: [bool(m[key]) for m in messages if m["customer"] == c] for c in range(plan.customers)
        }
        stranded_flags = {
            c: [
                m["stored"] and not m["settled"] and not m["closed"]
                for m in messages
                if m["customer"] == c
            ]
            for c in range(plan.customers)
        }
        lost_flags = {
            c: [m["ok"] and not m["stored"] for m in messages if m["customer"] == c]
            for c in range(plan.customers)
        }
        not_taken = sum(1 for m in messages if not m["ok"] and not m["stored"])
        interrupted = found["interrupted_tokens"]
        notified = sum(1 for h in interrupted if shown_notice.get(h))
        reasons: dict[str, int] = {}
        for m in messages:
            if m["reason"] == "interrupted":
                key = f"{m['decision']} (interrupted)"
                reasons[key] = reasons.get(key, 0) + 1
        results = {
            "benchmark": "crash_recovery",
            "plan": asdict(plan),
            "database": "sqlite",
            "kill": {
                "signal": "SIGKILL to the server's process group",
                "answered_before_kill": kill.get("answered_before"),
                "being_answered_at_kill": kill.get("in_flight_seen"),
                "stored_without_reply_after_kill": stranded_at_kill,
                "restart_seconds": round(restart_seconds, 1),
            },
            "figures": {
                "messages_sent": len(messages),
                "answered_before_kill": sum(1 for m in messages if m["ok"]),
                "stranded": rate_with_interval(stranded_flags),
                "lost": rate_with_interval(lost_flags),
                "in_flight_not_taken": not_taken,
                "settled_as_interrupted": reasons,
                "conversations_handed_off_interrupted": len(interrupted),
                "of_those_customer_sees_notice": notified,
                "replied_or_settled": rate_with_interval(by_customer("settled")),
            },
            "machine": machine(),
            "run_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        results["passed"] = (
            results["figures"]["stranded"]["count"] == 0
            and results["figures"]["lost"]["count"] == 0
            and notified == len(interrupted)
            and not kill.get("timed_out")
        )
        return results


def print_results(results: dict[str, Any], out=print) -> None:
    f, k = results["figures"], results["kill"]
    out(
        f"{f['messages_sent']} messages from {results['plan']['customers']} customers; "
        f"{k['answered_before_kill']} answered before SIGKILL, {k['being_answered_at_kill']} being answered at the kill, "
        f"restart {k['restart_seconds']} s"
    )
    for name in ("stranded", "lost"):
        r = f[name]
        out(
            f"  {name}: {r['count']} of {r['of']} (rate {r['rate']['value']}, 95% CI {r['rate']['low']}..{r['rate']['high']})"
        )
    out(
        f"  in flight at the kill, never stored (send failed on screen): {f['in_flight_not_taken']}"
    )
    out(
        f"  handed to the agents as interrupted: {f['conversations_handed_off_interrupted']} conversations, "
        f"{f['of_those_customer_sees_notice']} customers see the notice; settled: {f['settled_as_interrupted']}"
    )
    out("  PASSED" if results["passed"] else "  FAILED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--messages", type=int, default=3, help="messages each customer sends")
    parser.add_argument(
        "--kill-after", type=int, default=40, help="answered messages before the kill"
    )
    parser.add_argument(
        "--min-in-flight", type=int, default=3, help="messages being answered at the kill"
    )
    parser.add_argument("--models", choices=("real", "tiny"), default="tiny")
    parser.add_argument(
        "--interrupted-after", type=float, default=8.0, help="the recovery bound (s)"
    )
    parser.add_argument("--model-cache", type=Path, default=DEFAULT_MODEL_CACHE)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "crash_recovery.json")
    args = parser.parse_args(argv)
    plan = CrashPlan(
        customers=args.customers,
        messages=args.messages,
        kill_after=args.kill_after,
        min_in_flight=args.min_in_flight,
        models=args.models,
        interrupted_after_seconds=args.interrupted_after,
    )
    results = run(plan, model_cache=args.model_cache)
    print_results(results)
    if not args.no_save:
        save_results(args.out, results)
        print(f"saved {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
