"""The database unreachable, then back (issue 13), against a PostgreSQL server of this
test's own that it stops and starts (never the shared test server): the dialogue
manager raises StoreError quickly instead of hanging or crashing, the widget shows the
customer a polite notice, /healthz says 503; once the server is back the next message
is answered and stored and /healthz says 200 again. Tiny real models, real FAISS."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from chatbot.settings import load_settings
from tests.test_dialogue_support import SHOP, seed_shop


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for candidate in [*reversed(found), os.path.dirname(shutil.which("pg_ctl") or "")]:
        if (
            candidate
            and (Path(candidate) / "initdb").is_file()
            and (Path(candidate) / "pg_ctl").is_file()
        ):
            return Path(candidate)
    pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to start a throwaway server with")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    """A PostgreSQL server in its own directory on its own port, stopped and started at will."""

    def __init__(self):
        self.bin = _bin_dir()
        # Under /tmp, not tmp_path: when run as root the server runs as `postgres`, which
        # cannot enter pytest's private temporary folders.
        self.dir = Path(tempfile.mkdtemp(prefix="chatbot-outage-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.root = os.geteuid() == 0
        if self.root:
            subprocess.run(["id", "postgres"], check=True, capture_output=True)
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "chatbot")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/chatbot"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server():
    try:
        pg = ThrowawayPostgres()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot start a throwaway PostgreSQL server: {exc}")
    yield pg
    pg.remove()


def _stored_customer_messages(database, conversation_id: int) -> list[str]:
    from sqlalchemy import select

    from chatbot.store.schema import Message

    with database.session() as session:
        return list(
            session.scalars(
                select(Message.text)
                .where(Message.conversation_id == conversation_id, Message.role == "customer")
                .order_by(Message.turn_index)
            )
        )


def test_database_down_then_back(server, tmp_path, tiny_embedder_dir, tiny_reply_model_dir):
    from fastapi.testclient import TestClient

    from chatbot.app import create_app
    from chatbot.cli.manager import open_manager
    from chatbot.errors import StoreError
    from chatbot.indexing.builder import update_index
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.support.customer import new_token
    from chatbot.ui.widget_chat import FAILED, UNAVAILABLE, answer
    from chatbot.web.services import Services

    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        reply_model_path=tiny_reply_model_dir,
        database_url=server.url,
    )
    upgrade(server.url)
    seeding = Database(server.url)
    seed_shop(seeding)
    update_index(settings.paths, settings.retrieval, settings.dialogue, seeding, calibrate=False)
    seeding.dispose()

    manager, database = open_manager(settings)
    services = Services(settings=settings, database=database, manager=manager)
    client = TestClient(create_app(services))
    try:
        first = manager.respond(SHOP[3][0], source="cli")
        assert first.text
        token = new_token(services.customer_token_key())
        views = list(answer(services, token, SHOP[4][0]))
        assert views[-1].chat[-1]["content"] not in (FAILED, UNAVAILABLE)
        assert client.get("/healthz").status_code == 200

        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreError):
            manager.respond("Is anyone there?", first.conversation_id, source="cli")
        assert time.monotonic() - started < 15, "the request hung instead of failing"
        started = time.monotonic()
        views = list(
            answer(services, token, "Hello, is anyone there?")
        )  # nothing escapes: a notice
        assert time.monotonic() - started < 30
        last = views[-1]
        notice = last.warning if last.warning else last.chat[-1]["content"]
        assert notice in (FAILED, UNAVAILABLE), notice
        assert last.keep_input  # the unsent message stays in the box
        fresh = list(
            answer(services, new_token(services.customer_token_key()), "A new customer writes")
        )  # a new conversation: polite too
        assert (fresh[-1].warning or fresh[-1].chat[-1]["content"]) in (FAILED, UNAVAILABLE)
        down = client.get("/healthz")
        assert down.status_code == 503 and down.json() == {"ok": False}

        server.start()
        back = manager.respond(SHOP[0][0], first.conversation_id, source="cli")
        assert back.text and back.conversation_id == first.conversation_id
        assert _stored_customer_messages(database, first.conversation_id) == [
            SHOP[3][0],
            SHOP[0][0],
        ]
        views = list(
            answer(services, token, "Thanks, one more question: how do I reset my password?")
        )
        assert views[-1].chat[-1]["content"] not in (FAILED, UNAVAILABLE)
        assert client.get("/healthz").status_code == 200
    finally:
        client.close()
        database.dispose()


def test_a_server_that_never_answers_fails_within_the_connect_timeout():
    """A PostgreSQL address that accepts the TCP connection and then says nothing (a hung
    server, a half-dead load balancer): without a connect timeout every request would
    hang for minutes; with it, a StoreError comes within seconds."""
    import threading

    from chatbot.errors import StoreError
    from chatbot.store.database import CONNECT_TIMEOUT_SECONDS, Database, check_connection

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/chatbot")
        outcome: list[BaseException | None] = []

        def attempt():
            try:
                check_connection(database.engine)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout=CONNECT_TIMEOUT_SECONDS * 3 + 10)
        elapsed = time.monotonic() - started
        assert outcome, f"still waiting for the server after {elapsed:.0f}s: no connect timeout"
        assert isinstance(outcome[0], StoreError), repr(outcome[0])
        assert "cannot connect to database" in str(outcome[0])
        database.dispose()
