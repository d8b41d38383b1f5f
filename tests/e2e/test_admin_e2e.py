"""The admin console in a real Chromium against the real `chatbot serve`: transcript files
uploaded and imported with a summary per file (a malformed file's problems named with
file and line), then the index rebuilt as a background job; a training run started from
the console, watched (progress and loss curve change while it runs) and cancelled, its
worker process gone afterwards; the Versions tab listing versions and refusing, with
the reason, to promote one that evaluated worse than what serves."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid

import pytest
from playwright.sync_api import expect

from chatbot.ui.admin_versions import VERSION_COLUMNS
from tests.e2e.conftest import ADMIN, login

STEP = re.compile(r"Step ([\d,]+) of ([\d,]+)")


def login_admin(page) -> None:
    login(page, *ADMIN, "/admin")
    expect(page.locator("#import")).to_be_visible()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def conversation(cid: str, *turns: tuple[str, str]) -> str:
    return json.dumps(
        {
            "id": cid,
            "source": "e2e-upload",
            "turns": [{"role": role, "text": text} for role, text in turns],
        }
    )


def summary_row(page, name: str) -> list[str]:
    row = page.locator("#import-summary tr", has_text=name)
    expect(row).to_have_count(1)
    return [cell.strip() for cell in row.locator("td").all_inner_texts()]


def test_an_admin_uploads_transcripts_sees_the_summary_and_rebuilds_the_index(new_page, tmp_path):
    tag = uuid.uuid4().hex[:6]
    good = tmp_path / "e2e-shop.jsonl"
    good.write_text(
        "\n".join(
            [
                conversation(
                    f"e2e-{tag}-1",
                    ("customer", "Do you sell umbrellas?"),
                    ("agent", "Yes: folding and golf umbrellas, in the Accessories section."),
                ),
                conversation(
                    f"e2e-{tag}-2",
                    ("customer", "Can I change the delivery address?"),
                    (
                        "agent",
                        "Yes, until the parcel ships: open the order and choose Change address.",
                    ),
                ),
                conversation(
                    f"e2e-{tag}-3",
                    ("customer", "Is there a student discount?"),
                    ("agent", "Students get 10% off with a verified student e-mail address."),
                ),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    broken = tmp_path / "e2e-broken.jsonl"
    broken.write_text(
        "\n".join(
            [
                conversation(
                    f"e2e-{tag}-4",
                    ("customer", "Do you gift-wrap?"),
                    ("agent", "Yes, for 3 euros at checkout."),
                ),
                '{"id": "cut-off", "turns": [{"role": "customer", "te',
                conversation(f"e2e-{tag}-5", ("customer", "Hello?"), ("robot", "beep")),
            ]
        )
        + "\n",
        encoding="utf-8",
    )

    page = new_page()
    login_admin(page)
    page.set_input_files("#upload input[type=file]", [str(good), str(broken)])
    # The files are uploaded as soon as they are chosen; Import reads them once listed.
    # (the list shows a file's stem and suffix apart: "e2e-shop .jsonl")
    expect(page.locator("#upload tr", has_text="e2e-shop")).to_have_count(1)
    expect(page.locator("#upload tr", has_text="e2e-broken")).to_have_count(1)
    page.click("#import")

    summary = page.locator("#import-summary")
    expect(summary).to_contain_text("2 of 2 file(s) imported: 4 conversations", timeout=60_000)
    name, kind, result, conversations = summary_row(page, "e2e-shop.jsonl")[:4]
    assert (name, kind, result, conversations) == ("e2e-shop.jsonl", "jsonl", "imported", "3")
    shop = summary_row(page, "e2e-shop.jsonl")
    assert shop[-1] == "0", shop  # no problems
    bad = summary_row(page, "e2e-broken.jsonl")
    assert bad[:4] == ["e2e-broken.jsonl", "jsonl", "imported", "1"] and bad[-1] == "2", bad
    expect(summary).to_contain_text("Problems found")
    expect(summary).to_contain_text(re.compile(r"e2e-broken\.jsonl, line 2: not valid JSON"))
    expect(summary).to_contain_text(re.compile(r"e2e-broken\.jsonl, line 3: .*robot"))
    assert (
        "gradio" not in summary.inner_text().lower()
    )  # the names the admin knows, not temporary paths
    expect(summary).to_contain_text("Rebuild index")

    page.click("#rebuild-index")
    progress = page.locator("#index-progress")
    expect(progress).to_contain_text(
        re.compile(r"Job \d+ · (queued|running|succeeded) · started by " + ADMIN[0])
    )
    # The page polls the job: no reload, no click.
    expect(progress).to_contain_text("succeeded", timeout=120_000)
    expect(progress).to_contain_text(re.compile(r"index \S+: .*\d+ pairs in [\d.]+s"))


@pytest.fixture
def stop_training(server):
    """Whatever the test's outcome, no training worker outlives it (workers run in their
    own sessions, so they would outlive the server too)."""
    yield
    from chatbot.jobs import cancel_job
    from chatbot.jobs.control import latest_job

    database = server.database()
    try:
        job = latest_job(database, "train")
        if job is not None and job.active:
            cancel_job(database, job.id, by="e2e teardown")
    finally:
        database.dispose()


def test_a_training_run_shows_progress_and_is_cancelled(
    new_page, server, screenshots, stop_training
):
    import psutil

    from chatbot.jobs.control import latest_job

    page = new_page()
    login_admin(page)
    open_tab(page, "Training")
    progress = page.locator("#training-progress")
    expect(progress).to_contain_text(re.compile("No training run yet|Job \\d+"))
    page.fill("#train-minutes input", "5")
    page.locator("#train-mode").get_by_text("LoRA adapters (faster)").click()
    page.click("#start-training")
    expect(progress).to_contain_text(
        re.compile(r"Job \d+ · (queued|running) · started by " + ADMIN[0])
    )
    expect(progress).to_contain_text("LoRA · at most 5 minutes")

    # The progress moves by itself while the run trains in its own process.
    expect(progress).to_contain_text(STEP, timeout=120_000)
    first = progress.inner_text()
    first_step = int(STEP.search(first).group(1).replace(",", ""))
    deadline = time.monotonic() + 60
    while True:
        now = progress.inner_text()
        match = STEP.search(now)
        if match and int(match.group(1).replace(",", "")) > first_step:
            break
        assert time.monotonic() < deadline, f"the progress did not move: {first!r} then {now!r}"
        time.sleep(0.3)
    total = int(match.group(2).replace(",", ""))
    assert total == int(server.env["CHATBOT_TRAINING__MAX_STEPS"]), now
    assert "elapsed" in now and "training loss" in now

    # The loss curve has data: both series in its legend, the training one drawn as a
    # line through several points (Vega draws it as SVG paths).
    legend = page.locator("#loss-curve .role-legend-label")
    expect(legend).to_have_count(2, timeout=30_000)
    assert sorted(legend.all_text_contents()) == ["training", "validation"]
    deadline = time.monotonic() + 30
    while (
        max(
            [
                (d or "").count("L")
                for d in page.locator("#loss-curve .mark-line path").evaluate_all(
                    "paths => paths.map(p => p.getAttribute('d'))"
                )
            ]
            or [0]
        )
        < 2
    ):
        assert time.monotonic() < deadline, "the loss curve draws no line"
        time.sleep(0.3)
    page.screenshot(path=str(screenshots / "admin.png"), full_page=True)

    database = server.database()
    try:
        job = latest_job(database, "train")
    finally:
        database.dispose()
    assert job is not None and job.status == "running" and job.pid and psutil.pid_exists(job.pid)
    page.click("#cancel-training")
    expect(progress).to_contain_text(re.compile("Cancelling|cancelled"))
    expect(progress).to_contain_text(re.compile(r"Job \d+ · cancelled"), timeout=60_000)
    expect(progress).to_contain_text("Stopped at step")
    expect(progress).to_contain_text("chatbot train --resume")

    database = server.database()
    try:
        ended = latest_job(database, "train")
    finally:
        database.dispose()
    assert ended.id == job.id and ended.status == "cancelled", ended
    assert ended.result.get("cancelled_by") == ADMIN[0]
    deadline = time.monotonic() + 10
    while psutil.pid_exists(job.pid):  # the server reaps its child once it exits
        assert time.monotonic() < deadline, f"the worker process {job.pid} is still there"
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{job.pid}")


def test_versions_are_listed_and_a_worse_one_is_not_promoted(
    new_page, server, tmp_path, tiny_reply_model_dir
):
    from chatbot.models.versions import list_versions, promoted_version, register_version

    # A finished run's version, recorded as training records one (its files are a real,
    # servable model): it evaluated worse than the base model on its validation pairs.
    name = f"reply-e2e-{uuid.uuid4().hex[:6]}"
    ranker = f"ranker-e2e-{uuid.uuid4().hex[:6]}"
    shutil.copytree(tiny_reply_model_dir, tmp_path / name)
    database = server.database()
    try:
        register_version(
            database,
            name=name,
            path=tmp_path / name,
            settings={"mode": "lora"},
            data_snapshot={
                "train_pairs": 40,
                "train_by_origin": {"imported": 36, "agent_edited": 4},
            },
            metrics={"val_loss": 3.5, "val_loss_before": 2.5, "steps": 40},
            evaluation={
                "val_pairs": 12,
                "val_loss": 3.5,
                "compared_with": "base",
                "compared_val_loss": 2.5,
            },
        )
        # A ranker that lost to retrieval on its validation questions.
        (tmp_path / ranker).mkdir()
        register_version(
            database,
            name=ranker,
            path=tmp_path / ranker,
            settings={},
            data_snapshot={"train_pairs": 40},
            metrics={"steps": 12},
            evaluation={
                "kept": False,
                "why": "not kept: its picks lost to retrieval's",
                "gain": -0.012,
                "gain_stderr": 0.01,
                "val_pairs": 9,
            },
            kind="ranker",
        )
    finally:
        database.dispose()

    page = new_page()
    login_admin(page)
    open_tab(page, "Versions")
    table = page.locator("#versions")
    expect(table).to_contain_text(name)
    row = table.locator("tr", has_text=name)
    expect(row).to_have_count(1)
    cells = dict(zip(VERSION_COLUMNS, (c.strip() for c in row.locator("td").all_text_contents())))
    assert (
        cells["version"],
        cells["status"],
        cells["val loss"],
        cells["compared with"],
        cells["its val loss"],
        cells["from agents"],
    ) == (name, "candidate", "3.5000", "base", "2.5000", "4"), cells
    page.fill("#promote-name input, #promote-name textarea", name)
    page.click("#promote")
    status = page.locator("#versions-status")
    expect(status).to_contain_text(
        f"Refused: not promoted: {name} evaluates worse than the serving base"
    )
    expect(status).to_contain_text(
        "validation loss 3.5000 vs 2.5000 on the same 12 validation pairs"
    )
    expect(status).to_contain_text("Promote even if it evaluated worse")
    expect(status).to_contain_text("Serving: the base model")

    rankers = page.locator("#rankers")
    expect(rankers).to_contain_text(ranker)
    expect(rankers.locator("tr", has_text=ranker)).to_contain_text("-0.012 ± 0.010")
    page.fill("#promote-name input, #promote-name textarea", ranker)
    page.click("#promote")
    expect(status).to_contain_text("Refused: not promoted: not kept: its picks lost to retrieval's")
    expect(status).to_contain_text("no ranker")

    database = server.database()
    try:
        assert promoted_version(database) is None
        assert next(v for v in list_versions(database) if v.name == name).status == "candidate"
        assert promoted_version(database, kind="ranker") is None
    finally:
        database.dispose()
