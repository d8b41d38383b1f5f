"""Load harness for the customer widget: starts `chatbot serve` on loopback (one or more
workers sharing one store), drives simulated customers through the widget's own HTTP
API, then checks the store: every message sent is stored exactly once, in order, in the
right conversation.

    .venv/bin/python benchmarks/load_widget.py                       # 50 customers, SQLite, real models
    .venv/bin/python benchmarks/load_widget.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/x --workers 2
    .venv/bin/python benchmarks/load_widget.py --models tiny --customers 8 --no-save   # a smoke run

How a customer talks: exactly as the widget page does (recorded in Chromium): the
page's load event (`/gradio_api/queue/join` with its `fn_index` and a per-tab
`session_hash`, then the `/gradio_api/queue/data` event stream) gives the browser its
conversation token; each message is the page's `send` event with [token, text]. Some
customers have several tabs open on one conversation (the same token, as the browser's
storage shares it): their tabs send at the same moment, so the store sees concurrent
writes into one conversation.

With `--workers N` the customers are spread over N `chatbot serve` processes on N
ports. A tab stays on one worker (Gradio's event stream belongs to the process that
queued the event), but a conversation is NOT pinned: the tabs of one customer go to
different workers, so two processes write into one conversation at once. With more than
one worker (or `--rebuild-index`), a new transcript is imported and `chatbot index
--rebuild` runs in another process in the middle of the run; afterwards every worker is
asked that transcript's question, and its reply must draw on the new pair: the new index
version was picked up by every worker without a restart.

PostgreSQL: `--database-url` names a server (any database on it); the harness creates
its own database there (`chatbot_load_<random>`), and drops it at the end. Only
loopback addresses are used, for the app and the database. The run is bounded: a fixed
number of messages, a per-message timeout and an overall `--time-limit`; the workers
are stopped at the end whatever happens.

Figures (throughput, error rate, p50/p95 latency, the store check) are printed and
saved to benchmarks/results/load_widget_<sqlite|postgresql>[_<N>workers].json.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODEL_CACHE = Path(tempfile.gettempdir()) / "chatbot-load-widget-models"
# A question and answer that exist only in the transcript imported mid-run.
PROBE_QUESTION = "What is the secret word of the load harness probe lighthouse?"
PROBE_ANSWER = "The secret word of the probe lighthouse is periwinkle marmalade."
PROBE_MARK = "periwinkle marmalade"
PROBE_SOURCE = "load-probe"
# What the simulated customers ask (each message also carries its own marker, so no two are alike).
QUESTIONS = (
    "where is my parcel, please?",
    "how do I return a kettle?",
    "my card was declined but I was charged",
    "can I change the delivery address of my order?",
    "when will my refund arrive?",
    "I forgot my password, what now?",
    "do you ship abroad?",
    "the item arrived broken",
)
FAILED_MARKS = (
    "Sorry, I cannot answer right now",
    "the chat is unavailable right now",
    "faster than we can answer",
)


# -- the plan and what was seen -------------------------------------------------------


@dataclass
class Plan:
    customers: int = 50
    multi_tab_customers: int = 5
    tabs: int = 3
    messages: int = 2
    workers: int = 1
    models: str = "real"
    database_url: str | None = None
    rebuild_index: bool | None = None  # None: when workers > 1
    think_seconds: float = 0.5
    message_timeout: float = 300.0
    time_limit: float = 900.0
    seed: int = 0

    @property
    def rebuilds(self) -> bool:
        return self.workers > 1 if self.rebuild_index is None else self.rebuild_index

    def check(self) -> None:
        if self.customers < 1 or self.messages < 1 or self.workers < 1 or self.tabs < 1:
            raise SystemExit("customers, messages, workers and tabs must be at least 1")
        if self.multi_tab_customers > self.customers:
            raise SystemExit("--multi-tab-customers cannot exceed --customers")
        if self.models not in ("real", "tiny"):
            raise SystemExit("--models is real or tiny")
        if self.database_url:
            host = _url_host(self.database_url)
            if not _is_loopback(host):
                raise SystemExit(f"the database must be on a loopback address, not {host!r}")


@dataclass
class Sent:
    """One message a tab sent, and what came of it."""

    customer: int
    tab: int
    worker: int
    index: int
    text: str
    token: str
    started: float
    seconds: float | None = None
    ok: bool = False
    error: str | None = None


@dataclass
class StoreCheck:
    conversations: int = 0
    sent: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    turn_problems: list[str] = field(default_factory=list)
    reply_decisions: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.out_of_order
            or self.misplaced
            or self.turn_problems
        )

    def summary(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "sent": self.sent,
            "stored": self.stored,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "out_of_order": len(self.out_of_order),
            "misplaced": len(self.misplaced),
            "turn_problems": len(self.turn_problems),
            "clean": self.clean,
            "reply_decisions": self.reply_decisions,
            "examples": (
                self.lost
                + self.duplicated
                + self.out_of_order
                + self.misplaced
                + self.turn_problems
            )[:10],
        }


# -- the widget's HTTP API, as its page speaks it ------------------------------------------


class WidgetClient:
    """One worker's widget over HTTP: Gradio's queue protocol (join, then read the
    session's event stream until the event completes)."""

    def __init__(self, http, base_url: str):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.fn: dict[str, int] = {}

    async def connect(self) -> None:
        response = await self.http.get(self.base_url + "/config")
        response.raise_for_status()
        self.fn = {
            d["api_name"]: d["id"] for d in response.json()["dependencies"] if d.get("api_name")
        }
        for needed in ("load_page", "send"):
            if needed not in self.fn:
                raise RuntimeError(f"the widget at {self.base_url} has no {needed!r} event")

    async def call(
        self, api_name: str, data: list, session_hash: str, timeout: float
    ) -> tuple[dict, list[str]]:
        """(the `process_completed` message, warnings shown on the way)."""
        joined = await self.http.post(
            self.base_url + "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": self.fn[api_name],
                "session_hash": session_hash,
                "event_data": None,
                "trigger_id": None,
            },
            timeout=timeout,
        )
        if joined.status_code != 200:
            raise RuntimeError(f"queue/join answered {joined.status_code}: {joined.text[:200]}")
        event_id = joined.json()["event_id"]
        warnings: list[str] = []
        async with self.http.stream(
            "GET",
            self.base_url + "/gradio_api/queue/data",
            params={"session_hash": session_hash},
            timeout=timeout,
        ) as stream:
            if stream.status_code != 200:
                raise RuntimeError(f"queue/data answered {stream.status_code}")
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "log" and message.get("level") in ("warning", "error"):
                    warnings.append(str(message.get("log")))
                elif kind == "process_completed" and message.get("event_id") == event_id:
                    return message, warnings
                elif kind in ("unexpected_error", "server_stopped"):
                    raise RuntimeError(f"{kind}: {message.get('message')}")
        raise RuntimeError("the event stream ended before the reply was complete")


def chat_texts(completed: dict) -> list[str]:
    """The chat's entries (escaped text as the page shows it) from a `send` or
    `load_page` result."""
    data = (completed.get("output") or {}).get("data") or []
    chat = data[1] if len(data) > 1 and isinstance(data[1], list) else []
    texts = []
    for entry in chat:
        content = entry.get("content") if isinstance(entry, dict) else None
        if isinstance(content, list):
            texts.append(
                "".join(part.get("text", "") for part in content if isinstance(part, dict))
            )
        elif content is not None:
            texts.append(str(content))
    return texts


# -- customers -----------------------------------------------------------------------------


def message_text(run_id: str, customer: int, tab: int, index: int) -> str:
    """A customer's question with a marker at the end that makes it unique in the store
    (and findable by `check_store`), without changing what the question is about."""
    return f"{QUESTIONS[(customer + tab + index) % len(QUESTIONS)]} (ref {run_id}-c{customer}-t{tab}-m{index})"


def run_marker(run_id: str) -> str:
    return f"%(ref {run_id}-%"


async def send_message(client: WidgetClient, record: Sent, session: str, timeout: float) -> None:
    """Send `record`'s message as the widget's Send button does, and note on it whether
    the reply came (`ok`), what went wrong otherwise (`error`), and how long it took."""
    try:
        completed, warnings = await client.call(
            "send", [record.token, record.text], session, timeout
        )
        problem = next((w for w in warnings if any(m in w for m in FAILED_MARKS)), None)
        shown = chat_texts(completed)
        if not completed.get("success"):
            record.error = "the event failed"
        elif problem:
            record.error = f"warning: {problem}"
        elif shown and any(m in shown[-1] for m in FAILED_MARKS):
            record.error = f"reply failed: {shown[-1][:100]}"
        else:
            record.ok = True
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:300]
    record.seconds = time.monotonic() - record.started


async def drive(
    plan: Plan, urls: list[str], run_id: str, mid_run=None
) -> tuple[list[Sent], dict[str, Any]]:
    """Run every customer to the end (or the time limit); returns what each tab sent."""
    import httpx

    rng = random.Random(plan.seed)
    limits = httpx.Limits(
        max_connections=plan.customers * plan.tabs * 2 + 20, max_keepalive_connections=50
    )
    sent: list[Sent] = []
    done_messages = 0
    total_messages = plan.messages * (
        plan.customers - plan.multi_tab_customers + plan.multi_tab_customers * plan.tabs
    )
    half_done = asyncio.Event()
    async with httpx.AsyncClient(limits=limits, timeout=plan.message_timeout) as http:
        clients = [WidgetClient(http, url) for url in urls]
        for client in clients:
            await client.connect()

        async def customer(c: int) -> None:
            nonlocal done_messages
            tabs = plan.tabs if c < plan.multi_tab_customers else 1
            # Tabs of one customer on different workers: the conversation is not pinned.
            workers = [(c + t) % len(clients) for t in range(tabs)]
            sessions = [uuid.uuid4().hex[:11] for _ in range(tabs)]
            await asyncio.sleep(rng.random() * plan.think_seconds)
            first, _ = await clients[workers[0]].call(
                "load_page", [None], sessions[0], plan.message_timeout
            )
            token = first["output"]["data"][0]
            for t in range(
                1, tabs
            ):  # the other tabs open the page: same token from the browser's storage
                await clients[workers[t]].call(
                    "load_page", [token], sessions[t], plan.message_timeout
                )
            for i in range(plan.messages):

                async def one(t: int, i: int = i) -> None:
                    nonlocal done_messages
                    text = message_text(run_id, c, t, i)
                    record = Sent(c, t, workers[t], i, text, token, time.monotonic())
                    sent.append(record)
                    await send_message(
                        clients[workers[t]], record, sessions[t], plan.message_timeout
                    )
                    done_messages += 1
                    if done_messages * 2 >= total_messages:
                        half_done.set()

                # Several tabs press Send at the same moment.
                await asyncio.gather(*(one(t) for t in range(tabs)))
                await asyncio.sleep(rng.random() * plan.think_seconds)

        async def midway() -> dict[str, Any]:
            await half_done.wait()
            return await mid_run(clients) if mid_run else {}

        mid_task = asyncio.create_task(midway())
        try:
            await asyncio.wait_for(
                asyncio.gather(*(customer(c) for c in range(plan.customers))), plan.time_limit
            )
            timed_out = False
        except TimeoutError:
            timed_out = True
        half_done.set()
        try:
            mid = await asyncio.wait_for(mid_task, max(60.0, plan.message_timeout))
        except Exception as exc:
            mid = {"error": f"{type(exc).__name__}: {exc}"}
    mid["timed_out"] = timed_out
    return sent, mid


# -- the store check -----------------------------------------------------------------------


def check_store(database_url: str, sent: list[Sent], run_id: str) -> StoreCheck:
    """Every message sent is stored exactly once, in the conversation of its token,
    in the order its tab sent it, with distinct increasing turn numbers."""
    from sqlalchemy import select

    from chatbot.store.database import Database
    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.schema import Conversation, Message
    from chatbot.support.customer import token_hash

    check = StoreCheck(sent=len(sent))
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    Message.text, Message.conversation_id, Message.turn_index, Message.role
                ).where(Message.text.like(run_marker(run_id)))
            ).all()
            conversations = dict(
                session.execute(
                    select(Conversation.access_token_hash, Conversation.id).where(
                        Conversation.access_token_hash.in_({token_hash(s.token) for s in sent})
                    )
                ).all()
            )
            decisions = session.execute(
                select(DialogueReply.decision, DialogueReply.reason).where(
                    DialogueReply.conversation_id.in_(set(conversations.values()))
                )
            ).all()
            for decision, reason in decisions:
                key = f"{decision} ({reason})"
                check.reply_decisions[key] = check.reply_decisions.get(key, 0) + 1
            turns_by_conversation: dict[int, list[int]] = {}
            for conversation_id in set(conversations.values()):
                turns_by_conversation[conversation_id] = list(
                    session.scalars(
                        select(Message.turn_index).where(Message.conversation_id == conversation_id)
                    )
                )
    finally:
        database.dispose()
    check.conversations = len(conversations)
    stored: dict[str, list[tuple[int, int]]] = {}
    for text, conversation_id, turn_index, role in rows:
        if role == "customer":
            stored.setdefault(text, []).append((conversation_id, turn_index))
    check.stored = sum(len(v) for v in stored.values())
    by_tab: dict[tuple[str, int], list[Sent]] = {}
    for record in sent:
        places = stored.get(record.text, [])
        if not places:
            check.lost.append(f"lost: {record.text}")
            continue
        if len(places) > 1:
            check.duplicated.append(f"stored {len(places)} times: {record.text}")
        expected = conversations.get(token_hash(record.token))
        if places[0][0] != expected:
            check.misplaced.append(f"in conversation {places[0][0]}, not {expected}: {record.text}")
        by_tab.setdefault((record.token, record.tab), []).append(record)
    for records in by_tab.values():
        turns = [
            stored[r.text][0][1] for r in sorted(records, key=lambda r: r.index) if r.text in stored
        ]
        if turns != sorted(turns):
            check.out_of_order.append(
                f"turns {turns} for customer {records[0].customer} tab {records[0].tab}"
            )
    sent_texts = {r.text for r in sent}
    for text in stored:
        if text not in sent_texts:
            check.misplaced.append(f"stored but never sent: {text}")
    for conversation_id, turns in turns_by_conversation.items():
        if len(turns) != len(set(turns)):
            check.turn_problems.append(f"conversation {conversation_id}: a turn number used twice")
    return check


# -- the app on loopback ---------------------------------------------------------------------


def _url_host(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).host or "localhost"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresDatabase:
    """A database of its own on the given server: created now, dropped by `drop`."""

    def __init__(self, server_url: str):
        from sqlalchemy.engine import make_url

        self.name = f"chatbot_load_{secrets.token_hex(4)}"
        base = make_url(server_url)
        self.admin_url = base.set(database="postgres")
        self.url = base.set(database=self.name).render_as_string(hide_password=False)
        self._execute(f'CREATE DATABASE "{self.name}"')

    def _execute(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Stack:
    """The data directory, the store and N `chatbot serve` workers on loopback ports."""

    def __init__(self, plan: Plan, home: Path, env: dict[str, str], database_url: str):
        self.plan = plan
        self.home = home
        self.env = env
        self.database_url = database_url
        self.processes: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        self.serve_args: list[str] = []  # more `chatbot serve` options (e.g. --no-demo)

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "chatbot", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            cwd=REPO,
        )

    def start(self) -> None:
        upgraded = self.cli("db", "upgrade")
        if upgraded.returncode:
            raise RuntimeError(f"chatbot db upgrade failed: {upgraded.stderr[-2000:]}")
        # One after the other: the first prepares the store (demo data, index), the others find it ready.
        for n in range(self.plan.workers):
            log = self.home / f"serve-{n}.log"
            self.logs.append(log)
            self.urls.append(self.serve(_free_port(), log))

    def serve(self, port: int, log: Path) -> str:
        """One `chatbot serve` on `port` (its own process group, output to `log`), once
        it answers /healthz; returns its URL."""
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chatbot",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *self.serve_args,
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        self._wait_healthy(process, url, log)
        return url

    def _wait_healthy(
        self, process: subprocess.Popen, url: str, log: Path, limit: float = 600
    ) -> None:
        import urllib.request

        deadline = time.monotonic() + limit
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"chatbot serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"chatbot serve did not answer within {limit:.0f} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def make_run_env(
    plan: Plan,
    home: Path,
    database_url: str,
    model_cache: Path,
    tiny_dirs: tuple[Path, Path] | None,
) -> dict[str, str]:
    """`make_env`, once the models it names are there: the tiny ones built into `home`
    (with `plan.models` "tiny" and none given), the model cache made."""
    if plan.models == "tiny" and tiny_dirs is None:
        from tests.tiny_models import build_tiny_embedder, build_tiny_reply_model

        tiny_dirs = (
            build_tiny_embedder(home / "tiny-embedder"),
            build_tiny_reply_model(home / "tiny-reply"),
        )
    model_cache.mkdir(parents=True, exist_ok=True)
    return make_env(plan, home, database_url, model_cache, tiny_dirs)


def make_env(
    plan: Plan,
    home: Path,
    database_url: str,
    model_cache: Path,
    tiny_dirs: tuple[Path, Path] | None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(
        {
            "CHATBOT_HOME": str(home),
            "CHATBOT_DATABASE_URL": database_url,
            "CHATBOT_MODEL_CACHE": str(model_cache),
            "HF_HUB_OFFLINE": "1",
            # Every simulated customer comes from 127.0.0.1: the per-address limit would
            # otherwise stop the run (the limit itself is tested in tests/test_web_security.py).
            "CHATBOT_WEB__MESSAGE_LIMIT": "100000",
            # every simulated customer comes from 127.0.0.1: the per-address hand-off limit
            # would refuse all but the first few (the limit is tested in tests/test_web_attacks.py)
            "CHATBOT_WEB__HANDOFF_LIMIT": "100000",
            "CHATBOT_WEB__MESSAGE_WINDOW_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if tiny_dirs is not None:
        embedder, reply = tiny_dirs
        env.update(
            {
                "CHATBOT_EMBEDDER_PATH": str(embedder),
                "CHATBOT_REPLY_MODEL_PATH": str(reply),
                # The tiny models' scores are noise: every in-scope reply is sent (as in tests/e2e).
                "CHATBOT_DIALOGUE__ANSWER_THRESHOLD": "1.0",
                "CHATBOT_DIALOGUE__HANDOFF_THRESHOLD": "0.0",
                "CHATBOT_DIALOGUE__HANDOFF_ON_OUT_OF_SCOPE": "false",
                "CHATBOT_DIALOGUE__HANDOFF_TOPICS": "[]",
                "CHATBOT_DIALOGUE__OUT_OF_SCOPE_TOPICS": "[]",
                "CHATBOT_DIALOGUE__MAX_NEW_TOKENS": "16",
            }
        )
    return env


# -- the index rebuilt mid-run ---------------------------------------------------------------


def make_rebuild(stack: Stack, run_id: str):
    """The mid-run step: import a transcript with a new question, rebuild the index in
    another process, then ask that question on every worker."""

    async def rebuild(clients: list[WidgetClient]) -> dict[str, Any]:
        transcript = stack.home / f"probe-{run_id}.jsonl"
        transcript.write_text(
            json.dumps(
                {
                    "id": train_split_id(run_id),
                    "source": PROBE_SOURCE,
                    "turns": [
                        {"role": "customer", "text": PROBE_QUESTION},
                        {"role": "agent", "text": PROBE_ANSWER},
                    ],
                }
            )
            + "\n"
        )
        started = time.monotonic()
        imported = await asyncio.to_thread(stack.cli, "import", str(transcript))
        if imported.returncode:
            return {"error": f"chatbot import failed: {imported.stderr[-500:]}"}
        built = await asyncio.to_thread(stack.cli, "index", "--rebuild", "--json")
        if built.returncode:
            return {"error": f"chatbot index --rebuild failed: {built.stderr[-500:]}"}
        result = json.loads(built.stdout[built.stdout.index("{") :])
        rebuild_seconds = time.monotonic() - started
        await asyncio.sleep(6.0)  # FollowingRetriever looks for a new version every 5 s
        probes = []
        for n, client in enumerate(clients):
            session = uuid.uuid4().hex[:11]
            loaded, _ = await client.call("load_page", [None], session, 300)
            token = loaded["output"]["data"][0]
            completed, _ = await client.call("send", [token, PROBE_QUESTION], session, 300)
            shown = chat_texts(completed)
            probes.append(
                {
                    "worker": n,
                    "token": token,
                    "answer_shown": bool(shown) and PROBE_MARK in shown[-1],
                }
            )
        return {
            "index_version": result.get("version"),
            "rebuild_seconds": round(rebuild_seconds, 1),
            "probes": probes,
        }

    return rebuild


def train_split_id(run_id: str) -> str:
    """A conversation id for the probe that the importer puts in the train split (only
    train pairs are indexed)."""
    from chatbot.ingest.pairs import split_for
    from chatbot.ingest.settings import IngestSettings

    ingest = IngestSettings()
    n = 0
    while (
        split_for(
            PROBE_SOURCE,
            f"probe-{run_id}-{n}",
            val_fraction=ingest.val_fraction,
            test_fraction=ingest.test_fraction,
        )
        != "train"
    ):
        n += 1
    return f"probe-{run_id}-{n}"


def probes_used_new_pair(database_url: str, probes: list[dict[str, Any]]) -> list[bool]:
    """For each probe: did the worker's reply draw on the new pair (in what it showed,
    cited or weighed)?"""
    from sqlalchemy import select

    from chatbot.store.database import Database
    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.schema import Conversation
    from chatbot.support.customer import token_hash

    database = Database(database_url)
    try:
        with database.session() as session:
            found = []
            for probe in probes:
                conversation_id = session.scalar(
                    select(Conversation.id).where(
                        Conversation.access_token_hash == token_hash(probe["token"])
                    )
                )
                reply = session.scalars(
                    select(DialogueReply)
                    .where(DialogueReply.conversation_id == conversation_id)
                    .order_by(DialogueReply.id.desc())
                ).first()
                blob = (
                    json.dumps([reply.shown_text, reply.text, reply.citations, reply.candidates])
                    if reply
                    else ""
                )
                found.append(probe["answer_shown"] or PROBE_MARK in blob)
            return found
    finally:
        database.dispose()


# -- the figures -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The machine a run ran on, as its results record it."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def figures(sent: list[Sent], wall: float) -> dict[str, Any]:
    latencies = [s.seconds for s in sent if s.ok and s.seconds is not None]
    errors = [s for s in sent if not s.ok]
    kinds: dict[str, int] = {}
    for s in errors:
        kind = (s.error or "not finished").split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "messages_sent": len(sent),
        "replies_ok": len(latencies),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(sent), 4) if sent else None,
        "error_kinds": kinds,
        "error_examples": [s.error for s in errors[:5]],
        "throughput_messages_per_s": round(len(latencies) / wall, 3) if wall > 0 else None,
        "latency_p50_s": _round(percentile(latencies, 50)),
        "latency_p95_s": _round(percentile(latencies, 95)),
        "latency_max_s": _round(max(latencies) if latencies else None),
        "wall_s": round(wall, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(
    plan: Plan,
    *,
    tiny_dirs: tuple[Path, Path] | None = None,
    model_cache: Path = DEFAULT_MODEL_CACHE,
    keep_home: bool = False,
    report=print,
) -> dict[str, Any]:
    """The whole run: set up, drive, check, tear down. Returns the results."""
    plan.check()
    run_id = secrets.token_hex(3)
    with ExitStack() as cleanup:
        home = Path(tempfile.mkdtemp(prefix="chatbot-load-"))
        if not keep_home:
            cleanup.callback(shutil.rmtree, home, ignore_errors=True)
        if plan.database_url:
            pg = PostgresDatabase(plan.database_url)
            cleanup.callback(pg.drop)
            database_url, kind = pg.url, "postgresql"
        else:
            database_url, kind = f"sqlite:///{home / 'chatbot.db'}", "sqlite"
        env = make_run_env(plan, home, database_url, model_cache, tiny_dirs)
        stack = Stack(plan, home, env, database_url)
        cleanup.callback(stack.stop)
        report(
            f"starting {plan.workers} worker(s) on {kind} with {plan.models} models (home {home})"
        )
        started = time.monotonic()
        stack.start()
        report(f"ready in {time.monotonic() - started:.0f} s: {', '.join(stack.urls)}")
        mid_run = make_rebuild(stack, run_id) if plan.rebuilds else None
        began = time.monotonic()
        sent, mid = asyncio.run(drive(plan, stack.urls, run_id, mid_run))
        wall = time.monotonic() - began
        check = check_store(database_url, sent, run_id)
        if mid.get("probes"):
            for probe, used in zip(
                mid["probes"], probes_used_new_pair(database_url, mid["probes"]), strict=True
            ):
                probe["used_new_index"] = used
                probe.pop("token", None)
        results = {
            "benchmark": "load_widget",
            "database": kind,
            "workers": plan.workers,
            "models": plan.models,
            "plan": asdict(plan)
            | {"database_url": None if not plan.database_url else "(server on loopback)"},
            "conversations_pinned_to_a_worker": False,
            "figures": figures(sent, wall),
            "store_check": check.summary(),
            "index_rebuild": mid,
            "machine": machine(),
            "run_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        results["passed"] = (
            check.clean
            and not mid.get("timed_out")
            and (
                not plan.rebuilds
                or (bool(mid.get("probes")) and all(p.get("used_new_index") for p in mid["probes"]))
            )
        )
        return results


def print_results(results: dict[str, Any], out=print) -> None:
    f, c = results["figures"], results["store_check"]
    out(
        f"{results['database']}, {results['workers']} worker(s), {results['models']} models: "
        f"{f['messages_sent']} messages from {results['plan']['customers']} customers in {f['wall_s']} s"
    )
    out(
        f"  throughput {f['throughput_messages_per_s']} replies/s, error rate {f['error_rate']} "
        f"({f['errors']} errors {f['error_kinds']}), latency p50 {f['latency_p50_s']} s, p95 {f['latency_p95_s']} s, "
        f"max {f['latency_max_s']} s"
    )
    out(
        f"  store: {c['stored']} of {c['sent']} stored in {c['conversations']} conversations; lost {c['lost']}, "
        f"duplicated {c['duplicated']}, out of order {c['out_of_order']}, misplaced {c['misplaced']}, "
        f"turn problems {c['turn_problems']}"
    )
    out(f"  replies: {c.get('reply_decisions')}")
    for example in c["examples"]:
        out(f"    {example}")
    mid = results.get("index_rebuild") or {}
    if mid.get("probes") or mid.get("error"):
        out(
            f"  index rebuilt mid-run: {mid.get('index_version')} in {mid.get('rebuild_seconds')} s; "
            f"new version used by workers: {[p.get('used_new_index') for p in mid.get('probes', [])]}"
            + (f"; error: {mid['error']}" if mid.get("error") else "")
        )
    out("  PASSED" if results["passed"] else "  FAILED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument(
        "--multi-tab-customers",
        type=int,
        default=5,
        help="how many customers have several tabs open on one conversation",
    )
    parser.add_argument("--tabs", type=int, default=3, help="tabs of each multi-tab customer")
    parser.add_argument("--messages", type=int, default=2, help="messages each tab sends")
    parser.add_argument(
        "--workers", type=int, default=1, help="chatbot serve processes sharing the store"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server on loopback (its own database is made and dropped)",
    )
    parser.add_argument("--models", choices=("real", "tiny"), default="real")
    parser.add_argument(
        "--rebuild-index",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rebuild the index mid-run (default: with more than one worker)",
    )
    parser.add_argument(
        "--think", type=float, default=0.5, help="most seconds a customer waits between messages"
    )
    parser.add_argument("--message-timeout", type=float, default=300.0)
    parser.add_argument(
        "--time-limit", type=float, default=900.0, help="seconds for the whole drive"
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=DEFAULT_MODEL_CACHE,
        help="where the converted reply model is kept between runs",
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep the data directory (logs) for a look"
    )
    parser.add_argument(
        "--no-save", action="store_true", help="print only; leave benchmarks/results alone"
    )
    parser.add_argument(
        "--out", type=Path, help="results file (default: benchmarks/results/load_widget_<db>.json)"
    )
    args = parser.parse_args(argv)
    plan = Plan(
        customers=args.customers,
        multi_tab_customers=args.multi_tab_customers,
        tabs=args.tabs,
        messages=args.messages,
        workers=args.workers,
        models=args.models,
        database_url=args.database_url,
        rebuild_index=args.rebuild_index,
        think_seconds=args.think,
        message_timeout=args.message_timeout,
        time_limit=args.time_limit,
    )
    results = run(plan, model_cache=args.model_cache, keep_home=args.keep_home)
    print_results(results)
    if not args.no_save:
        suffix = results["database"] + (f"_{plan.workers}workers" if plan.workers > 1 else "")
        out = args.out or RESULTS / f"load_widget_{suffix}.json"
        save_results(out, results)
        print(f"saved {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
