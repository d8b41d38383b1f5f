"""Time to the first visible word, and total time by path, through the widget's own HTTP
API: starts `chatbot serve` on loopback (the bundled demo shop, the embedded defaults),
asks the demo shop's held-out questions one customer at a time, as the page does, and
times each reply from the moment Send is pressed:

- first word: the first streamed update that shows the customer a word of the reply
  (Gradio's `process_generating` messages on the page's event stream);
- total: until the event completes (the reply stored, its sources shown).

Each turn's path is read from the store afterwards (`chatbot.dialogue.records.reply_path`:
cache, retrieved, generated, refined, handoff), so the figures are split by path, with
the share of turns that took each. Percentiles come with 95% bootstrap intervals.

    .venv/bin/python benchmarks/first_words.py                    # real models, every held-out demo question
    .venv/bin/python benchmarks/first_words.py --models tiny --limit 5 --no-save   # a smoke run
    .venv/bin/python benchmarks/first_words.py --data ../shared/datasets/transcripts/stc3_helpdesk_en.train.jsonl --limit 60
    .venv/bin/python benchmarks/first_words.py --set CHATBOT_DIALOGUE__SEND_RETRIEVED_AT=1.0 --out benchmarks/results/first_words_generated.json   # every turn drafted

With `--data FILE` the app serves that support history instead of the demo shop (imported
and indexed first, as a company would: `chatbot import`, `chatbot index`, then
`chatbot serve --no-demo`), and the questions are the first customer messages of its own
held-out (test split) conversations.

Saved to benchmarks/results/first_words.json. One customer at a time on purpose: this
measures what one customer waits for, not throughput (that is load_widget.py's job).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.load_widget import DEFAULT_MODEL_CACHE, Plan, Stack, WidgetClient, make_env  # noqa: E402
from benchmarks.results_file import save_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "first_words.json"
THINKING = "\u2026"
# The questions a new user asks first (issue 11), then the held-out ones.
FIRST_QUESTIONS = (
    "Hi, my parcel still hasn't arrived, where is my order?",
    "How do I return a jacket that doesn't fit?",
    "Do you ship to Canada?",
    "When will I get my refund?",
    "Can I change the delivery address of my order?",
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def timed_send(
    client: WidgetClient, token: str, text: str, session: str, timeout: float
) -> dict[str, Any]:
    """Send one message as the page does; the seconds to the first word shown and to the end."""
    started = time.monotonic()
    joined = await client.http.post(
        client.base_url + "/gradio_api/queue/join",
        json={
            "data": [token, text],
            "fn_index": client.fn["send"],
            "session_hash": session,
            "event_data": None,
            "trigger_id": None,
        },
        timeout=timeout,
    )
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    first_word = None
    thinking_seen = False
    async with client.http.stream(
        "GET",
        client.base_url + "/gradio_api/queue/data",
        params={"session_hash": session},
        timeout=timeout,
    ) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (None, event_id):
                continue
            kind = message.get("msg")
            if kind == "process_generating":
                strings = _strings((message.get("output") or {}).get("data"))
                if not thinking_seen:
                    # The first update shows the customer's message and the "…" placeholder.
                    thinking_seen = any(THINKING in s for s in strings)
                    continue
                if first_word is None and any(re.search(r"\w", s) for s in strings):
                    first_word = time.monotonic() - started
            elif kind == "process_completed":
                total = time.monotonic() - started
                return {
                    "first_word_s": first_word if first_word is not None else total,
                    "total_s": total,
                    "ok": bool(message.get("success")),
                }
            elif kind in ("unexpected_error", "server_stopped"):
                raise RuntimeError(f"{kind}: {message.get('message')}")
    raise RuntimeError("the event stream ended before the reply was complete")


def held_out_questions(
    database_url: str, limit: int | None, first: tuple[str, ...] = FIRST_QUESTIONS
) -> list[str]:
    """The first customer message of each held-out (test split) conversation, after `first`."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT m.text FROM conversations c JOIN messages m ON m.conversation_id = c.id "
                    "WHERE c.split = 'test' AND m.turn_index = 0 AND m.role = 'customer' ORDER BY c.id"
                )
            ).all()
    finally:
        engine.dispose()
    questions = list(first) + [r[0] for r in rows]
    return questions[:limit] if limit else questions


def stored_paths(database_url: str, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    from sqlalchemy import select

    from chatbot.dialogue.records import reply_path
    from chatbot.store.database import Database
    from chatbot.store.dialogue_schema import DialogueReply

    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.scalars(
                select(DialogueReply).where(DialogueReply.conversation_id.in_(conversation_ids))
            ).all()
            return {
                r.conversation_id: {
                    "path": reply_path(r.decision, r.reason, r.trace),
                    "reason": r.reason,
                    "decision": r.decision,
                    "server_total_s": (r.timings or {}).get("total"),
                }
                for r in rows
            }
    finally:
        database.dispose()


def conversation_of(database_url: str, token: str) -> int | None:
    from chatbot.errors import AccessDenied
    from chatbot.store.database import Database
    from chatbot.support import customer

    database = Database(database_url)
    try:
        with database.session() as session:
            return customer.conversation_of(session, token).id
    except AccessDenied:
        return None
    finally:
        database.dispose()


def percentile_ci(
    values: list[float], q: float, resamples: int = 2000, seed: int = 0
) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"value": None, "low": None, "high": None}
    data = np.asarray(values)
    rng = np.random.default_rng(seed)
    boots = np.percentile(rng.choice(data, size=(resamples, data.size), replace=True), q, axis=1)
    return {
        "value": round(float(np.percentile(data, q)), 3),
        "low": round(float(np.percentile(boots, 2.5)), 3),
        "high": round(float(np.percentile(boots, 97.5)), 3),
    }


def share_ci(hits: int, n: int, resamples: int = 2000, seed: int = 0) -> dict[str, float | None]:
    import numpy as np

    if n == 0:
        return {"value": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    boots = rng.binomial(n, hits / n, size=resamples) / n
    return {
        "value": round(hits / n, 3),
        "low": round(float(np.percentile(boots, 2.5)), 3),
        "high": round(float(np.percentile(boots, 97.5)), 3),
    }


async def ask_all(url: str, questions: list[str], timeout: float, report) -> list[dict[str, Any]]:
    import httpx

    turns = []
    async with httpx.AsyncClient(timeout=timeout) as http:
        client = WidgetClient(http, url)
        await client.connect()
        for n, question in enumerate(questions):
            session = uuid.uuid4().hex[:11]
            loaded, _ = await client.call("load_page", [None], session, timeout)
            token = loaded["output"]["data"][0]
            turn = {"question": question, "token": token}
            try:
                turn.update(await timed_send(client, token, question, session, timeout))
            except Exception as exc:
                turn.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
            turns.append(turn)
            if (n + 1) % 10 == 0 or n + 1 == len(questions):
                report(f"  {n + 1}/{len(questions)} asked")
    return turns


def run(
    models: str,
    limit: int | None,
    timeout: float,
    data: Path | None = None,
    settings: dict[str, str] | None = None,
    report=print,
) -> dict[str, Any]:
    with ExitStack() as cleanup:
        home = Path(tempfile.mkdtemp(prefix="chatbot-first-words-"))
        cleanup.callback(shutil.rmtree, home, ignore_errors=True)
        database_url = f"sqlite:///{home / 'chatbot.db'}"
        tiny_dirs = None
        if models == "tiny":
            from tests.tiny_models import build_tiny_embedder, build_tiny_reply_model

            tiny_dirs = (
                build_tiny_embedder(home / "tiny-embedder"),
                build_tiny_reply_model(home / "tiny-reply"),
            )
        DEFAULT_MODEL_CACHE.mkdir(parents=True, exist_ok=True)
        plan = Plan(customers=1, multi_tab_customers=0, workers=1, models=models)
        env = make_env(plan, home, database_url, DEFAULT_MODEL_CACHE, tiny_dirs)
        env.update(settings or {})
        stack = Stack(plan, home, env, database_url)
        cleanup.callback(stack.stop)
        if data is not None:
            for step in (("db", "upgrade"), ("import", str(data.resolve())), ("index",)):
                report(f"chatbot {' '.join(step)}")
                done = stack.cli(*step, timeout=1800)
                if done.returncode:
                    raise SystemExit(f"chatbot {' '.join(step)} failed:\n{done.stderr[-2000:]}")
            stack.serve_args = ["--no-demo"]
        report(f"starting chatbot serve with {models} models (home {home})")
        stack.start()
        questions = held_out_questions(database_url, limit, FIRST_QUESTIONS if data is None else ())
        report(f"asking {len(questions)} questions one at a time")
        # One warm-up turn, not counted: the first turn of a fresh process loads the models.
        asyncio.run(ask_all(stack.urls[0], ["hello, is anyone there?"], timeout, lambda _m: None))
        turns = asyncio.run(ask_all(stack.urls[0], questions, timeout, report))
        ids = {t["token"]: conversation_of(database_url, t["token"]) for t in turns}
        paths = stored_paths(database_url, [i for i in ids.values() if i is not None])
        for n, turn in enumerate(turns):
            turn.update(paths.get(ids[turn.pop("token")], {"path": "unknown"}))
            if data is not None:  # the shared datasets' text is never committed: a number instead
                turn["question"] = f"held-out question {n + 1}"

    ok = [t for t in turns if t.get("ok")]
    by_path: dict[str, Any] = {}
    for path in sorted({t["path"] for t in ok}):
        group = [t for t in ok if t["path"] == path]
        by_path[path] = {
            "turns": len(group),
            "share": share_ci(len(group), len(ok)),
            "first_word_p50_s": percentile_ci([t["first_word_s"] for t in group], 50),
            "first_word_p95_s": percentile_ci([t["first_word_s"] for t in group], 95),
            "total_p50_s": percentile_ci([t["total_s"] for t in group], 50),
            "total_p95_s": percentile_ci([t["total_s"] for t in group], 95),
        }
    return {
        "benchmark": "first_words",
        "models": models,
        "data": data.name if data else "bundled demo shop",
        "settings": settings or {},
        "questions": len(questions),
        "answered_ok": len(ok),
        "errors": [t.get("error") for t in turns if not t.get("ok")][:5],
        "first_word_p50_s": percentile_ci([t["first_word_s"] for t in ok], 50),
        "first_word_p95_s": percentile_ci([t["first_word_s"] for t in ok], 95),
        "total_p50_s": percentile_ci([t["total_s"] for t in ok], 50),
        "total_p95_s": percentile_ci([t["total_s"] for t in ok], 95),
        "by_path": by_path,
        "turns": turns,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python benchmarks/first_words.py " + " ".join(sys.argv[1:]),
    }


def print_results(results: dict[str, Any], out=print) -> None:
    def ci(figure: dict[str, Any]) -> str:
        return f"{figure['value']} s [{figure['low']}, {figure['high']}]"

    out(
        f"{results['data']}: {results['answered_ok']} of {results['questions']} questions answered through the "
        f"widget's HTTP API ({results['models']} models); errors: {results['errors'] or 'none'}"
    )
    out(
        f"  first visible word: p50 {ci(results['first_word_p50_s'])}, p95 {ci(results['first_word_p95_s'])}"
    )
    out(f"  whole reply:        p50 {ci(results['total_p50_s'])}, p95 {ci(results['total_p95_s'])}")
    for path, f in results["by_path"].items():
        share = f["share"]
        out(
            f"  {path:<10} {f['turns']:>4} turns ({share['value']:.0%} [{share['low']:.0%}, {share['high']:.0%}]): "
            f"first word p50 {f['first_word_p50_s']['value']} s p95 {f['first_word_p95_s']['value']} s; "
            f"total p50 {f['total_p50_s']['value']} s p95 {f['total_p95_s']['value']} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=("real", "tiny"), default="real")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="ask at most this many questions (default: all held-out)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per reply")
    parser.add_argument(
        "--data", type=Path, help="serve this transcript file instead of the demo shop"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CHATBOT_KEY=VALUE",
        help="a setting for the served app, e.g. CHATBOT_DIALOGUE__SEND_RETRIEVED_AT=1.0 (always generate)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default first_words.json, or first_words_<data>.json)",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_file():
        raise SystemExit(
            f"{args.data}: no such file (the real sets live in ../shared/datasets/transcripts)"
        )
    settings = dict(item.split("=", 1) for item in args.set)
    if any(not key.startswith("CHATBOT_") for key in settings):
        raise SystemExit("--set takes CHATBOT_<KEY>=<value>")
    results = run(args.models, args.limit, args.timeout, args.data, settings)
    print_results(results)
    if not args.no_save:
        out = args.out or (
            RESULTS
            if args.data is None
            else RESULTS.with_name(f"first_words_{args.data.name.split('.')[0]}.json")
        )
        save_results(out, results)
        print(f"saved {out}")
    return 0 if results["answered_ok"] == results["questions"] else 1


if __name__ == "__main__":
    sys.exit(main())
