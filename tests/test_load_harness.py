"""The load harness (benchmarks/load_widget.py) in a small run: the real `chatbot serve`
on loopback with tiny real models, customers speaking the widget's HTTP protocol, some
with two tabs writing into one conversation at the same moment; then the store check
must find every message stored exactly once, in order, in its conversation. The store
check itself is tested on a store with a lost, a duplicated and a misordered message,
so a clean result means something. The two-worker PostgreSQL run (with the index
rebuilt mid-run) is marked slow."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.load_widget import Plan, Sent, check_store, message_text, run


def run_apart(*args, **kwargs):
    """The harness in a thread of its own: it runs its own asyncio loop, and the browser
    tests' Playwright (same pytest process) may keep one running on the main thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run, *args, **kwargs).result()


def test_small_run_loses_and_duplicates_nothing(tmp_path, tiny_embedder_dir, tiny_reply_model_dir):
    plan = Plan(
        customers=8,
        multi_tab_customers=2,
        tabs=2,
        messages=2,
        models="tiny",
        think_seconds=0.2,
        message_timeout=90,
        time_limit=180,
    )
    results = run_apart(
        plan,
        tiny_dirs=(tiny_embedder_dir, tiny_reply_model_dir),
        model_cache=tmp_path / "models",
        report=lambda line: None,
    )
    check, figures = results["store_check"], results["figures"]
    assert figures["messages_sent"] == (8 - 2 + 2 * 2) * 2
    assert check["sent"] == check["stored"] == figures["messages_sent"], check
    assert (
        check["lost"],
        check["duplicated"],
        check["out_of_order"],
        check["misplaced"],
        check["turn_problems"],
    ) == (0, 0, 0, 0, 0), check["examples"]
    assert check["conversations"] == 8  # two tabs, one conversation
    assert figures["errors"] == 0, figures["error_examples"]
    assert (
        figures["latency_p50_s"] is not None
        and figures["latency_p95_s"] >= figures["latency_p50_s"]
    )
    assert results["passed"]


def test_the_store_check_finds_lost_duplicated_misordered_and_misplaced_messages(sqlite_database):
    from chatbot.store.conversations import add_message
    from chatbot.support.customer import new_token, open_conversation, token_key

    database = sqlite_database
    run_id = "abc123"
    key = token_key("a test session secret")
    tokens = [new_token(key), new_token(key)]
    conversations = [open_conversation(database, token, key) for token in tokens]

    def text(c: int, i: int) -> str:
        return message_text(run_id, c, 0, i)

    sent = [Sent(c, 0, 0, i, text(c, i), tokens[c], 0.0) for c in (0, 1) for i in range(3)]
    with database.session() as session:
        stored = [
            (0, text(0, 0)),
            (0, text(0, 0)),  # m0 twice
            (0, text(0, 2)),
            (0, text(0, 1)),  # m2 before m1
            (1, text(1, 0)),
            (0, text(1, 2)),
        ]  # c1 m1 lost, c1 m2 in c0's conversation
        for c, body in stored:
            add_message(
                session=session, conversation_id=conversations[c], role="customer", text=body
            )
    check = check_store(database.url, sent, run_id)
    assert not check.clean
    assert [m.split(":")[0] for m in check.lost] == ["lost"] and text(1, 1) in check.lost[0]
    assert len(check.duplicated) == 1 and text(0, 0) in check.duplicated[0]
    assert len(check.out_of_order) == 1
    assert len(check.misplaced) == 1 and text(1, 2) in check.misplaced[0]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgresql_pick_up_a_new_index_version(
    postgres_url, tmp_path, tiny_embedder_dir, tiny_reply_model_dir
):
    plan = Plan(
        customers=10,
        multi_tab_customers=3,
        tabs=2,
        messages=2,
        workers=2,
        models="tiny",
        database_url=postgres_url,
        think_seconds=0.2,
        message_timeout=120,
        time_limit=300,
    )
    results = run_apart(
        plan,
        tiny_dirs=(tiny_embedder_dir, tiny_reply_model_dir),
        model_cache=tmp_path / "models",
        report=lambda line: None,
    )
    check = results["store_check"]
    assert check["clean"] and check["stored"] == check["sent"], check
    assert results["figures"]["errors"] == 0, results["figures"]["error_examples"]
    probes = results["index_rebuild"]["probes"]
    assert [p["worker"] for p in probes] == [0, 1]
    assert all(p["used_new_index"] for p in probes), results["index_rebuild"]


@pytest.mark.slow
def test_a_server_killed_under_load_strands_and_loses_nothing(
    tmp_path, tiny_embedder_dir, tiny_reply_model_dir
):
    """benchmarks/crash_recovery.py in a small run: the real `chatbot serve` gets SIGKILL
    while a message is being answered, is started again, and after the recovery bound no
    stored message is without a reply, none the server took is lost, and every customer
    whose conversation went to the agents as interrupted sees the notice."""
    from benchmarks.crash_recovery import CrashPlan
    from benchmarks.crash_recovery import run as run_crash

    plan = CrashPlan(
        customers=6, messages=3, kill_after=4, min_in_flight=1, interrupted_after_seconds=5.0
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(
            run_crash,
            plan,
            tiny_dirs=(tiny_embedder_dir, tiny_reply_model_dir),
            model_cache=tmp_path / "models",
            report=lambda line: None,
        ).result()
    figures, kill = results["figures"], results["kill"]
    assert kill["being_answered_at_kill"] >= 1  # the crash did strand something
    assert kill["stored_without_reply_after_kill"] >= 1
    assert figures["stranded"]["count"] == 0, figures
    assert figures["lost"]["count"] == 0, figures
    assert figures["conversations_handed_off_interrupted"] >= 1
    assert (
        figures["of_those_customer_sees_notice"] == figures["conversations_handed_off_interrupted"]
    )
    assert results["passed"]
