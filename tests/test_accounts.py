"""Accounts: password hashing and policy, the accounts in the store (on SQLite, and on
PostgreSQL where the database kind matters), logins with growing delays (never a lockout), sessions in the store, the login
rate limiter, the session secret file, and `chatbot users`."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select

from chatbot.accounts import passwords
from chatbot.accounts.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from chatbot.accounts.ratelimit import LoginRateLimiter
from chatbot.accounts.secret import session_secret
from chatbot.accounts.sessions import end_session, session_user, start_session
from chatbot.accounts.throttle import ThrottlePolicy, delay_after
from chatbot.accounts.users import (
    UserInfo,
    add_user,
    authenticate,
    count_admins,
    find_user,
    get_user,
    list_users,
    remove_user,
    set_password,
    set_role,
    unlock_user,
)
from chatbot.cli import main
from chatbot.errors import AccountError, ConfigError, InputError, LoginRefused, LoginThrottled
from chatbot.settings import load_settings
from chatbot.store.support_schema import USER_ROLES, AgentAction, User

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class CountingHasher(PasswordHasher):
    """A real argon2 hasher with cheap parameters that counts its verifications."""

    verifications = 0
    _count_lock = threading.Lock()

    def verify(self, hash, password):
        with CountingHasher._count_lock:
            CountingHasher.verifications += 1
        return super().verify(hash, password)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    return CountingHasher(time_cost=time_cost, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    """argon2 with small parameters: the recommended ones cost ~0.2 s a hash."""
    CountingHasher.verifications = 0
    monkeypatch.setattr(passwords, "HASHER_FACTORY", cheap_hasher)


def login(database, username, password, now=None, address="10.0.0.1"):
    return authenticate(
        database, username, password, address=address, policy=ThrottlePolicy(), now=now
    )


def stored_row(database, username):
    with database.session() as session:
        return session.scalars(select(User).where(User.username == username)).one()


# --- passwords -------------------------------------------------------------------------


def test_hash_and_verify():
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert hash_password(PASSWORD) != stored  # salted
    assert verify_password(stored, PASSWORD) is True
    assert verify_password(stored, PASSWORD + "x") is False
    assert verify_password("not a hash", PASSWORD) is False
    assert verify_password("$argon2id$v=19$m=1024,t=1,p=1$broken", PASSWORD) is False
    assert verify_password(stored, None) is False


def test_default_hasher_uses_argon2_recommended_parameters(monkeypatch):
    monkeypatch.undo()  # the real default, not the tests' cheap one
    hasher = passwords.password_hasher()
    reference = PasswordHasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.type) == (
        reference.time_cost,
        reference.memory_cost,
        reference.parallelism,
        reference.type,
    )
    assert hasher.type.name == "ID"


def test_needs_rehash_when_parameters_change(monkeypatch):
    stored = hash_password(PASSWORD)
    assert needs_rehash(stored) is False
    monkeypatch.setattr(passwords, "HASHER_FACTORY", lambda: cheap_hasher(time_cost=2))
    assert needs_rehash(stored) is True
    assert verify_password(stored, PASSWORD) is True  # old hashes still verify


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "too short: 5 characters, at least 10"),
        ("a" * 1025, "too long: 1025 characters, at most 1024"),
        ("x" * 12, "one character repeated"),
        ("Frederica12", "must not be the username"),
    ],
)
def test_password_policy_says_why(password, reason):
    with pytest.raises(InputError, match=reason):
        check_password_policy(password, username="frederica12")


def test_password_policy_accepts_a_good_password():
    check_password_policy(PASSWORD)
    check_password_policy("ü" * 9 + "ß")  # characters, not bytes, are counted


# --- accounts in the store -------------------------------------------------------------


def test_add_get_list(migrated_database):
    info = add_user(migrated_database, "Alice", PASSWORD, "agent")
    assert isinstance(info, UserInfo)
    assert (info.username, info.role, info.active, info.last_login_at) == (
        "Alice",
        "agent",
        True,
        None,
    )
    assert info.created_at.tzinfo is not None
    add_user(migrated_database, "bob@example.com", PASSWORD + "!", "admin")
    assert [u.username for u in list_users(migrated_database)] == ["Alice", "bob@example.com"]
    assert get_user(migrated_database, "alice") == info  # any case
    assert find_user(migrated_database, "carol") is None
    with pytest.raises(AccountError, match="no user 'carol'"):
        get_user(migrated_database, "carol")
    assert count_admins(migrated_database) == 1
    row = stored_row(migrated_database, "Alice")
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash


def test_duplicate_username_in_any_case(migrated_database):
    add_user(migrated_database, "alice", PASSWORD, "agent")
    for name in ("alice", "ALICE"):
        with pytest.raises(AccountError, match=f"user '{name}' already exists"):
            add_user(migrated_database, name, PASSWORD, "admin")
    assert len(list_users(migrated_database)) == 1


@pytest.mark.parametrize(
    "username", ["ab", "a" * 81, "with space", "semi;colon", "<script>", "émile", ""]
)
def test_bad_usernames_are_refused(sqlite_database, username):
    with pytest.raises(InputError, match="3 to 80 letters, digits or"):
        add_user(sqlite_database, username, PASSWORD, "agent")


def test_bad_role_and_weak_password_are_refused(sqlite_database):
    with pytest.raises(InputError, match="role 'root' is not one of: agent, admin"):
        add_user(sqlite_database, "alice", PASSWORD, "root")
    with pytest.raises(InputError, match="too short"):
        add_user(sqlite_database, "alice", "secret", "agent")
    assert list_users(sqlite_database) == []


def test_remove_keeps_what_the_agent_did(migrated_database):
    from chatbot.store.conversations import start_conversation

    add_user(migrated_database, "boss", PASSWORD, "admin")
    agent = add_user(migrated_database, "alice", PASSWORD, "agent")
    with migrated_database.session() as session:
        conversation = start_conversation(session=session)
        session.add(
            AgentAction(
                conversation_id=conversation.id,
                user_id=agent.id,
                username="alice",
                action="reply",
                text="hi",
            )
        )
    removed = remove_user(migrated_database, "ALICE")
    assert removed.username == "alice"
    assert find_user(migrated_database, "alice") is None
    with migrated_database.session() as session:
        action = session.scalars(select(AgentAction)).one()
        assert (action.user_id, action.username) == (None, "alice")
    with pytest.raises(AccountError, match="no user 'alice'"):
        remove_user(migrated_database, "alice")


def test_the_last_admin_is_kept_unless_forced(migrated_database):
    add_user(migrated_database, "root1", PASSWORD, "admin")
    add_user(migrated_database, "agent1", PASSWORD, "agent")
    with pytest.raises(AccountError, match="'root1' is the last active admin"):
        remove_user(migrated_database, "root1")
    with pytest.raises(AccountError, match="last active admin"):
        set_role(migrated_database, "root1", "agent")
    add_user(migrated_database, "root2", PASSWORD, "admin")
    remove_user(migrated_database, "root1")  # another admin remains
    assert count_admins(migrated_database) == 1
    remove_user(migrated_database, "agent1")  # agents are never the last admin
    remove_user(migrated_database, "root2", force=True)
    assert count_admins(migrated_database) == 0


def test_set_role_ends_sessions(sqlite_database):
    alice = add_user(sqlite_database, "alice", PASSWORD, "agent")
    key = start_session(sqlite_database, alice.id, hours=1)
    assert session_user(sqlite_database, key) == alice
    promoted = set_role(sqlite_database, "alice", "admin")
    assert promoted.role == "admin" and promoted.session_epoch == alice.session_epoch + 1
    assert session_user(sqlite_database, key) is None
    key = start_session(sqlite_database, alice.id, hours=1)
    assert set_role(sqlite_database, "alice", "admin") == promoted  # no change, sessions kept
    assert session_user(sqlite_database, key).role == "admin"
    with pytest.raises(InputError, match="role 'boss'"):
        set_role(sqlite_database, "alice", "boss")


# --- logins ----------------------------------------------------------------------------


def test_login_success_records_it(migrated_database):
    add_user(migrated_database, "Alice", PASSWORD, "agent")
    user = login(migrated_database, " alice ", PASSWORD, now=T0)
    assert user.username == "Alice" and user.last_login_at == T0
    assert get_user(migrated_database, "alice").last_login_at == T0


def test_unknown_user_and_wrong_password_read_the_same(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    messages = []
    for name, password in (
        ("alice", "wrong password!"),
        ("nobody", PASSWORD),
        ("x", PASSWORD),
        ("alice", "y" * 5000),
    ):
        with pytest.raises(LoginRefused) as refused:
            login(sqlite_database, name, password)
        messages.append(str(refused.value))
    assert set(messages) == {"wrong username or password"}


def test_unknown_user_costs_a_password_check(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    CountingHasher.verifications = 0
    with pytest.raises(LoginRefused):
        login(sqlite_database, "nobody", PASSWORD)
    assert CountingHasher.verifications == 1  # the dummy check, as for a real account


def test_wrong_passwords_slow_down_never_lock(migrated_database):
    """After `free_failures` wrong passwords from one address, each further try waits
    1, 2, 4 … seconds (unchecked while it waits); the right password then gets in."""
    add_user(migrated_database, "alice", PASSWORD, "agent")
    for i in range(3):
        with pytest.raises(LoginRefused, match="^wrong username or password$"):
            login(migrated_database, "alice", "not the password", now=T0 + timedelta(seconds=i))
    CountingHasher.verifications = 0
    last = T0 + timedelta(seconds=2)
    with pytest.raises(LoginThrottled) as waited:  # even the right one waits, unchecked
        login(migrated_database, "alice", PASSWORD, now=last)
    assert waited.value.retry_after == 1 and CountingHasher.verifications == 0
    with pytest.raises(LoginRefused, match="^wrong username or password$"):
        login(migrated_database, "alice", "not the password", now=last + timedelta(seconds=1))
    with pytest.raises(LoginThrottled) as waited:  # 4 failures: 2 seconds now
        login(migrated_database, "alice", PASSWORD, now=last + timedelta(seconds=2))
    assert waited.value.retry_after == 1
    user = login(migrated_database, "alice", PASSWORD, now=last + timedelta(seconds=3))
    assert user.username == "alice"
    # The success forgot this address's failures: a typo now costs nothing.
    with pytest.raises(LoginRefused, match="^wrong username or password$"):
        login(migrated_database, "alice", "typo", now=last + timedelta(seconds=4))


def test_a_strangers_guesses_do_not_stop_the_user_from_another_address(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    for i in range(12):
        with pytest.raises(LoginRefused):
            login(sqlite_database, "alice", f"guess {i}", now=T0, address="203.0.113.9")
    with pytest.raises(LoginThrottled):
        login(sqlite_database, "alice", PASSWORD, now=T0, address="203.0.113.9")
    assert login(sqlite_database, "alice", PASSWORD, now=T0, address="10.1.1.1").username == "alice"


def test_unknown_and_known_names_are_throttled_alike(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    answers = {}
    for name, address in (("alice", "10.0.0.1"), ("nobody", "10.0.0.2")):
        seen = []
        for i in range(6):
            try:
                when = T0 + timedelta(seconds=i)
                login(sqlite_database, name, "not the password", now=when, address=address)
            except LoginThrottled as exc:
                seen.append(("throttled", exc.retry_after))
            except LoginRefused as exc:
                seen.append(("refused", str(exc)))
        answers[name] = seen
    assert answers["alice"] == answers["nobody"]
    assert answers["alice"][0] == ("refused", "wrong username or password")
    assert ("throttled", 1) in answers["alice"]


def test_many_addresses_hit_the_account_wide_cap(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    policy = ThrottlePolicy(account_failures_per_hour=5)
    for i in range(5):
        with pytest.raises(LoginRefused):
            authenticate(
                sqlite_database, "alice", "x" * 12, address=f"10.0.0.{i}", policy=policy, now=T0
            )
    with pytest.raises(LoginThrottled) as waited:
        authenticate(sqlite_database, "alice", PASSWORD, address="10.9.9.9", policy=policy, now=T0)
    assert waited.value.retry_after == 3600
    # An admin lifts it at once.
    unlock_user(sqlite_database, "alice")
    assert (
        authenticate(
            sqlite_database, "alice", PASSWORD, address="10.9.9.9", policy=policy, now=T0
        ).username
        == "alice"
    )


def test_delays_grow_and_are_capped():
    assert [delay_after(n, 3, 300) for n in (0, 2, 3, 4, 5, 10, 60)] == [
        0.0,
        0.0,
        1.0,
        2.0,
        4.0,
        128.0,
        300.0,
    ]


def test_login_rehashes_an_outdated_hash(sqlite_database, monkeypatch):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    old = stored_row(sqlite_database, "alice").password_hash
    monkeypatch.setattr(passwords, "HASHER_FACTORY", lambda: cheap_hasher(time_cost=2))
    login(sqlite_database, "alice", PASSWORD)
    new = stored_row(sqlite_database, "alice").password_hash
    assert new != old and ",t=2," in new and not needs_rehash(new)
    login(sqlite_database, "alice", PASSWORD)
    assert stored_row(sqlite_database, "alice").password_hash == new


def test_set_password_ends_sessions(sqlite_database):
    alice = add_user(sqlite_database, "alice", PASSWORD, "agent")
    key = start_session(sqlite_database, alice.id, hours=1)
    with pytest.raises(InputError, match="too short"):
        set_password(sqlite_database, "alice", "short")
    assert session_user(sqlite_database, key) is not None
    changed = set_password(sqlite_database, "ALICE", "a new password here")
    assert changed.session_epoch == alice.session_epoch + 1
    assert session_user(sqlite_database, key) is None
    with pytest.raises(LoginRefused, match="wrong username or password"):
        login(sqlite_database, "alice", PASSWORD, now=T0)
    assert login(sqlite_database, "alice", "a new password here", now=T0).id == alice.id
    with pytest.raises(AccountError, match="no user 'zed'"):
        set_password(sqlite_database, "zed", "a new password here")


def test_set_password_lifts_the_delays(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    for _ in range(5):
        with pytest.raises(LoginRefused):
            login(sqlite_database, "alice", "not the password", now=T0)
    set_password(sqlite_database, "alice", "a new password here")
    assert login(sqlite_database, "alice", "a new password here", now=T0).username == "alice"


def test_unlock_user_lifts_the_delays(sqlite_database):
    add_user(sqlite_database, "alice", PASSWORD, "agent")
    for _ in range(5):
        with pytest.raises(LoginRefused):
            login(sqlite_database, "alice", "not the password", now=T0)
    with pytest.raises(LoginThrottled):
        login(sqlite_database, "alice", PASSWORD, now=T0)
    unlock_user(sqlite_database, "alice")
    assert login(sqlite_database, "alice", PASSWORD, now=T0).username == "alice"


# --- sessions --------------------------------------------------------------------------


def test_session_lives_in_the_store(migrated_database):
    alice = add_user(migrated_database, "alice", PASSWORD, "agent")
    key = start_session(migrated_database, alice.id, hours=1, now=T0)
    assert session_user(migrated_database, key, now=T0) == alice
    assert session_user(migrated_database, key + "x", now=T0) is None
    assert session_user(migrated_database, None, now=T0) is None
    assert session_user(migrated_database, key, now=T0 + timedelta(hours=1, seconds=1)) is None
    # Failed logins leave a session alone.
    for _ in range(8):
        with pytest.raises(LoginRefused):
            login(migrated_database, "alice", "not the password", now=T0)
    assert session_user(migrated_database, key, now=T0) is not None
    end_session(migrated_database, key)  # logout
    assert session_user(migrated_database, key, now=T0) is None
    # disabled
    other = start_session(migrated_database, alice.id, hours=1, now=T0)
    with migrated_database.session() as session:
        session.get(User, alice.id).active = False
    assert session_user(migrated_database, other, now=T0) is None


def test_set_role_and_removal_end_sessions_and_a_new_user_gets_none(migrated_database):
    add_user(migrated_database, "boss", PASSWORD, "admin")
    alice = add_user(migrated_database, "alice", PASSWORD, "agent")
    key = start_session(migrated_database, alice.id, hours=1)
    set_role(migrated_database, "alice", "admin")
    assert session_user(migrated_database, key) is None
    key = start_session(migrated_database, alice.id, hours=1)
    remove_user(migrated_database, "alice")
    assert session_user(migrated_database, key) is None
    # SQLite hands the highest removed id to the next row: the old key must not fit.
    mallory = add_user(migrated_database, "mallory", PASSWORD, "admin")
    if migrated_database.engine.dialect.name == "sqlite":
        assert mallory.id == alice.id
    assert session_user(migrated_database, key) is None


# --- rate limiter ----------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_sliding_window():
    clock = FakeClock()
    limiter = LoginRateLimiter(3, 60, clock=clock)
    assert [limiter.hit("1.2.3.4") for _ in range(3)] == [True, True, True]
    assert limiter.retry_after("1.2.3.4") == 60.0
    clock.now += 10
    assert limiter.hit("1.2.3.4") is False
    assert limiter.hit("5.6.7.8") is True  # keys are independent
    assert limiter.retry_after("1.2.3.4") == pytest.approx(50.0)
    assert limiter.retry_after("5.6.7.8") == 0.0
    assert limiter.retry_after("unknown") == 0.0
    clock.now += 50  # the first three leave the window; refused attempts were not counted
    assert limiter.retry_after("1.2.3.4") == 0.0
    assert [limiter.hit("1.2.3.4") for _ in range(4)] == [True, True, True, False]
    limiter.reset("1.2.3.4")
    assert limiter.hit("1.2.3.4") is True


def test_rate_limiter_sliding_not_fixed():
    clock = FakeClock()
    limiter = LoginRateLimiter(2, 10, clock=clock)
    assert limiter.hit("k")
    clock.now += 9
    assert limiter.hit("k")
    clock.now += 2  # the first attempt left the window, the second has not
    assert limiter.hit("k") is True
    assert limiter.hit("k") is False
    assert limiter.retry_after("k") == pytest.approx(8.0)


def test_rate_limiter_memory_is_bounded():
    clock = FakeClock()
    limiter = LoginRateLimiter(2, 60, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100  # the least recently seen went first
    clock.now += 61
    limiter.hit("fresh")
    assert len(limiter) == 1  # stale keys are swept


def test_rate_limiter_is_thread_safe():
    limiter = LoginRateLimiter(50, 3600)
    allowed = []

    def worker():
        allowed.extend(limiter.hit("same") for _ in range(100))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 50 and len(allowed) == 800


def test_rate_limiter_checks_its_arguments():
    with pytest.raises(ValueError, match="max_attempts"):
        LoginRateLimiter(0, 60)
    with pytest.raises(ValueError, match="window_seconds"):
        LoginRateLimiter(5, 0)


# --- the session secret ----------------------------------------------------------------


def test_secret_from_configuration(tmp_path):
    configured = "s" * 20 + "0123456789abcdefghij"
    settings = load_settings(home=tmp_path / "home", web={"session_secret": configured})
    assert session_secret(settings.web.session_secret, settings.paths) == configured
    assert not (tmp_path / "home" / "session_secret").exists()
    with pytest.raises(
        ConfigError, match="web.session_secret is 5 characters long; use at least 32"
    ):
        short = load_settings(home=tmp_path / "home", web={"session_secret": "short"})
        session_secret(short.web.session_secret, short.paths)


def test_secret_generated_once_with_mode_0600(settings):
    first = session_secret(settings.web.session_secret, settings.paths)
    path = settings.home / "session_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 60 and path.read_text().strip() == first
    assert session_secret(settings.web.session_secret, settings.paths) == first
    again = load_settings(home=settings.home)
    assert session_secret(again.web.session_secret, again.paths) == first
    assert [p.name for p in settings.home.iterdir() if p.name.startswith(".session_secret")] == []


def test_secret_created_once_by_racing_workers(settings):
    secrets_seen: list[str] = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        secrets_seen.append(session_secret(settings.web.session_secret, settings.paths))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(secrets_seen) == 8 and len(set(secrets_seen)) == 1
    assert (settings.home / "session_secret").read_text().strip() == secrets_seen[0]


def test_secret_another_process_wrote_first_is_read(settings):
    from chatbot.accounts.secret import _create

    settings.home.mkdir(parents=True)
    path = settings.home / "session_secret"
    theirs = "t" * 64
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (theirs + "\n").encode())
    os.close(fd)
    assert _create(path) == theirs


def test_secret_readable_by_others_is_refused(settings):
    session_secret(settings.web.session_secret, settings.paths)
    path = settings.home / "session_secret"
    path.chmod(0o644)
    with pytest.raises(
        ConfigError, match=f"can be read by other users \\(mode 644\\); run: chmod 600 {path}"
    ):
        session_secret(settings.web.session_secret, settings.paths)
    path.chmod(0o600)
    session_secret(settings.web.session_secret, settings.paths)


def test_secret_file_without_a_key_is_refused(settings):
    settings.home.mkdir(parents=True)
    path = settings.home / "session_secret"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold a usable key"):
        session_secret(settings.web.session_secret, settings.paths)


def test_secret_file_that_is_a_link_is_refused(settings, tmp_path):
    settings.home.mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("k" * 64)
    target.chmod(0o600)
    (settings.home / "session_secret").symlink_to(target)
    with pytest.raises(ConfigError, match="cannot be read"):
        session_secret(settings.web.session_secret, settings.paths)


# --- chatbot users ---------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path):
    env = {"CHATBOT_HOME": str(tmp_path / "home")}
    upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    return env


def users(env, *args, input=None):
    return CliRunner().invoke(main, ["users", *args], env=env, input=input)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def cli_database(env):
    from chatbot.store.database import Database

    return Database(load_settings(home=env["CHATBOT_HOME"]).resolved_database_url)


def test_cli_roles_match_the_schema():
    from chatbot.cli.users import ROLES

    assert ROLES == USER_ROLES


def test_cli_first_admin_from_stdin_then_list(cli_env):
    result = users(
        cli_env, "add", "admin", "--role", "admin", "--password-stdin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "added admin (admin)"
    added = users(cli_env, "add", "alice", "--password-stdin", "--json", input=PASSWORD + "\r\n")
    assert json.loads(added.stdout)["role"] == "agent"
    listed = users(cli_env, "list", "--json")
    payload = json.loads(listed.stdout)
    assert [(u["username"], u["role"], u["active"]) for u in payload["users"]] == [
        ("admin", "admin", True),
        ("alice", "agent", True),
    ]
    assert "session_epoch" not in payload["users"][0] and "password_hash" not in listed.stdout
    datetime.fromisoformat(payload["users"][0]["created_at"])
    table = users(cli_env, "list").output
    assert "admin" in table and "active" in table and "never" in table
    database = cli_database(cli_env)
    try:
        assert login(database, "alice", PASSWORD).role == "agent"  # "\r\n" was not part of it
    finally:
        database.dispose()


def test_cli_password_prompt_hidden_with_confirmation(cli_env):
    # a too-short one is refused with the reason, a mismatch asks again, then it is accepted
    typed = "\n".join(["abc123", PASSWORD, "something else entirely", PASSWORD, PASSWORD]) + "\n"
    result = users(cli_env, "add", "alice", input=typed)
    assert result.exit_code == 0, result.output
    assert (
        "password is too short: 6 characters" in result.output and "do not match" in result.output
    )
    assert PASSWORD not in result.output  # never echoed
    database = cli_database(cli_env)
    try:
        assert login(database, "alice", PASSWORD).username == "alice"
    finally:
        database.dispose()


def test_cli_never_takes_a_password_argument(cli_env):
    result = users(cli_env, "add", "alice", "--password", PASSWORD)
    assert result.exit_code == 2 and "No such option" in result.output


def test_cli_wrong_role_and_bad_name(cli_env):
    result = users(
        cli_env, "add", "alice", "--role", "root", "--password-stdin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 2 and "'root' is not one of 'agent', 'admin'" in result.output
    line = one_line_error(users(cli_env, "add", "a b", "--password-stdin", input=PASSWORD + "\n"))
    assert "username 'a b' is not allowed" in line


def test_cli_duplicate_user_is_refused_before_the_prompt(cli_env):
    users(cli_env, "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    result = users(cli_env, "add", "Alice")  # no password given: it must not be asked for
    assert one_line_error(result) == "Error: user 'Alice' already exists"
    assert "Password" not in result.output


def test_cli_weak_or_missing_password_from_stdin(cli_env):
    assert "too short" in one_line_error(
        users(cli_env, "add", "alice", "--password-stdin", input="short\n")
    )
    assert "stdin gave no password" in one_line_error(
        users(cli_env, "add", "alice", "--password-stdin", input="")
    )
    assert json.loads(users(cli_env, "list", "--json").stdout)["users"] == []


def test_cli_remove_and_the_last_admin(cli_env):
    users(cli_env, "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    users(cli_env, "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert users(cli_env, "remove", "alice").output.strip() == "removed alice (agent)"
    line = one_line_error(users(cli_env, "remove", "root"))
    assert "'root' is the last active admin" in line and "--force" in line
    assert "last active admin" in one_line_error(users(cli_env, "set-role", "root", "agent"))
    assert one_line_error(users(cli_env, "remove", "ghost")) == "Error: no user 'ghost'"
    result = users(cli_env, "remove", "root", "--force", "--json")
    assert json.loads(result.stdout) == {"removed": "root", "role": "admin"}
    assert "no accounts yet" in users(cli_env, "list").output


def test_cli_set_password_set_role_unlock(cli_env):
    users(cli_env, "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    users(cli_env, "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    result = users(cli_env, "set-password", "alice", "--password-stdin", input="another good one\n")
    assert result.exit_code == 0 and "password changed for alice" in result.output
    assert (
        one_line_error(
            users(cli_env, "set-password", "ghost", "--password-stdin", input=PASSWORD + "\n")
        )
        == "Error: no user 'ghost'"
    )
    assert users(cli_env, "set-role", "alice", "admin").output.strip() == "alice is now admin"
    assert users(cli_env, "set-role", "alice", "chief").exit_code == 2
    database = cli_database(cli_env)
    try:
        for _ in range(5):
            with pytest.raises(LoginRefused):
                login(database, "alice", "wrong one!!")
        with pytest.raises(LoginThrottled):
            login(database, "alice", "another good one")
        assert users(cli_env, "unlock", "alice").output.strip() == "unlocked alice"
        assert login(database, "alice", "another good one").role == "admin"
    finally:
        database.dispose()


def test_cli_needs_the_schema(tmp_path):
    env = {"CHATBOT_HOME": str(tmp_path)}
    line = one_line_error(users(env, "list"))
    assert "run: chatbot db upgrade" in line
