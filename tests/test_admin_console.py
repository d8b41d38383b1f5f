"""The admin console's handlers over a real store and real worker processes: uploaded
files imported with a summary per file (problems with file and line, escaped), oversized
and non-transcript files refused; a training run started, watched and cancelled from the
console, and an index rebuild; the versions table and a refused promotion; the page
builds with the elements the browser tests select."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from chatbot.errors import AccessDenied
from chatbot.ui import (
    admin,
    admin_common,
    admin_import,
    admin_training,
    admin_versions,
)
from chatbot.web.services import Services
from tests.test_ingest_import import GOOD, record, write
from tests.test_jobs import job_settings, stop_jobs  # noqa: F401 - job_settings is a fixture
from tests.test_training_support import fill_pairs


@pytest.fixture
def services(job_settings, sqlite_database):
    yield Services(job_settings, sqlite_database, manager=None)
    stop_jobs(sqlite_database)


def _upload(tmp_path, folder: str, name: str, lines: list[str]):
    """A file where Gradio keeps uploads: a temporary folder of its own, the base name kept."""
    path = tmp_path / "gradio" / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(write(path, lines))


def test_uploaded_files_are_imported_with_a_summary_per_file(services, tmp_path):
    good = _upload(tmp_path, "a1", "shop.jsonl", GOOD)
    bad = _upload(
        tmp_path,
        "b2",
        "broken.jsonl",
        [
            record("x1", ("customer", "Is it in stock?"), ("agent", "Yes, ships today.")),
            record("x2", ("customer", "Hello?"), ("robot", "beep")),
            '{"id": "x3", "turns": [{"role": "customer", "te',
            record("<img src=x onerror=alert(1)>", ("customer", "  "), ("agent", " ")),
        ],
    )
    folder = [
        _upload(
            tmp_path,
            "c3",
            "faq.csv",
            ["question,answer", 'Open on Sunday?,"No, Monday to Saturday."'],
        ),
        _upload(tmp_path, "d4", "README.md", ["# notes"]),
        _upload(tmp_path, "e5", ".DS_Store", ["x"]),
    ]
    calls = []
    outcome = admin_import.import_uploads(
        services, [good, bad], folder, lambda share, desc="": calls.append((share, desc))
    )
    text = outcome.markdown
    assert outcome.imported and not outcome.rejected
    assert "**3 of 3 file(s) imported: 5 conversations" in text
    assert "| shop\\.jsonl | jsonl | imported | 3 | 8 | 4 | 0 | 0 |" in text
    assert "| broken\\.jsonl | jsonl | imported | 1 | 2 | 1 | 0 | 3 |" in text
    assert "| faq\\.csv | csv | imported | 1 |" in text
    assert (
        "- broken\\.jsonl, line 2: " in text and "- broken\\.jsonl, line 3: not valid JSON" in text
    )
    assert (
        "&lt;img src=x onerror=alert\\(1\\)&gt;" in text and "<img" not in text
    )  # shown, never rendered
    assert "gradio" not in text  # the temporary folders never show; the names the admin knows do
    assert "Left out of the folder, not transcript files: 1 (README\\.md)" in text
    assert "Rebuild index" in text
    assert calls and calls[-1] == (1.0, "done") and all(0 <= share <= 1 for share, _ in calls)
    assert any("importing shop.jsonl" in desc for _, desc in calls)

    again = admin_import.import_uploads(services, [good], None).markdown
    assert (
        "| shop\\.jsonl | jsonl | already imported | 0 |" in again and "Rebuild index" not in again
    )
    assert (
        admin_import.import_uploads(services, None, None).markdown
        == "Choose transcript files (or a folder) to import first."
    )


def test_oversized_files_and_an_empty_folder_are_refused(services, tmp_path):
    services.settings = services.settings.model_copy(
        update={"web": services.settings.web.model_copy(update={"max_upload_mb": 1})}
    )
    big = _upload(tmp_path, "f6", "huge.jsonl", GOOD * 5000)
    outcome = admin_import.import_uploads(services, [big], None)
    assert outcome.rejected and not outcome.imported
    assert (
        "huge\\.jsonl: 3\\.8 MB is larger than the upload limit of 1 MB \\(setting web\\.max\\_upload\\_mb\\)"
        in outcome.markdown
    )
    empty = admin_import.import_uploads(
        services, None, [_upload(tmp_path, "g7", "notes.txt", ["hi"])]
    ).markdown
    assert "the folder holds no transcript file" in empty


def _until(view_of, check, timeout=240.0):
    deadline = time.monotonic() + timeout
    while True:
        view = view_of()
        if check(view):
            return view
        assert time.monotonic() < deadline, view.markdown
        time.sleep(0.3)


def test_training_is_started_watched_and_cancelled_from_the_console(services):
    fill_pairs(services.database)
    services.settings = services.settings.model_copy(
        update={"training": services.settings.training.model_copy(update={"max_steps": 400})}
    )
    first = admin_training.training_view(services)
    assert not first.running and "No training run yet" in first.markdown and first.curve is None
    started = admin_training.start_training(services, 5, "lora", "ada")
    assert (
        started.running
        and f"Job {started.job_id} · **" in started.markdown
        and "by ada" in started.markdown
    )
    assert "LoRA · at most 5 minutes" in started.markdown
    second = admin_training.start_training(services, 5, "full", "bob")
    assert (
        "**Not started:** a training run is already" in second.markdown
        and second.job_id == started.job_id
    )
    # The server may go away meanwhile: everything the page shows comes from the store.
    running = _until(
        lambda: admin_training.training_view(services),
        lambda v: v.curve is not None and len(v.curve) >= 3,
    )
    assert (
        "Step " in running.markdown
        and " of 400 (" in running.markdown
        and "elapsed" in running.markdown
    )
    assert set(running.curve["series"]) >= {"training", "validation"} and list(
        running.curve.columns
    ) == ["step", "loss", "series"]
    cancelling = admin_training.cancel_training(services, "ada")
    assert "Cancelling" in cancelling.markdown or "writing its model version" in cancelling.markdown
    done = _until(
        lambda: admin_training.training_view(services), lambda v: not v.running, timeout=60
    )
    assert (
        "**cancelled**" in done.markdown
        and "Stopped at step" in done.markdown
        and "chatbot train \\-\\-resume" in done.markdown
    )
    assert admin_training.cancel_training(services, "ada").markdown.startswith(
        "No training run is running."
    )


def test_index_rebuild_from_the_console(services):
    fill_pairs(services.database)
    assert admin_import.index_status(services) == ("No index rebuild yet.", False)
    text, running = admin_import.start_index_rebuild(services, "ada")
    assert running and ("**queued**" in text or "**running**" in text) and "by ada" in text
    deadline = time.monotonic() + 240
    while running:
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
        text, running = admin_import.index_status(services)
    assert "**succeeded**" in text and "24 pairs" in text


def test_versions_table_promotion_refusal_force_and_rollback(
    services, tmp_path, tiny_reply_model_dir
):
    import shutil

    from chatbot.models.versions import register_version

    db = services.database
    for name, loss, compared_with, compared, origins in [
        ("reply-a", 2.0, "base", 3.0, {"imported": 20}),
        ("reply-b", 2.4, "reply-a", 2.0, {"imported": 20, "agent_approved": 3, "agent_edited": 2}),
    ]:
        shutil.copytree(tiny_reply_model_dir, tmp_path / name)
        register_version(
            db,
            name=name,
            path=tmp_path / name,
            settings={"mode": "lora"},
            data_snapshot={"train_pairs": sum(origins.values()), "train_by_origin": origins},
            metrics={"val_loss": loss, "val_loss_before": 3.0, "steps": 6},
            evaluation={
                "val_pairs": 6,
                "val_loss": loss,
                "compared_with": compared_with,
                "compared_val_loss": compared,
            },
        )
    assert "Promoted **reply\\-a**" in admin_versions.promote_by_name(
        services, "reply-a", False, "ada"
    )
    frame = admin_versions.versions_frame(services)
    rows = {row["version"]: row for row in frame.to_dict("records")}
    assert rows["reply-a"]["status"] == "serving" and rows["reply-b"]["status"] == "candidate"
    assert (rows["reply-b"]["from agents"], rows["reply-b"]["train pairs"]) == ("5", "25")
    assert (
        rows["reply-b"]["val loss"],
        rows["reply-b"]["compared with"],
        rows["reply-b"]["its val loss"],
    ) == ("2.4000", "reply-a", "2.0000")

    refused = admin_versions.promote_by_name(services, "reply-b", False, "ada")
    assert refused.startswith(
        "**Refused:** not promoted: reply\\-b evaluates worse than the serving reply\\-a: "
        "validation loss 2\\.4000 vs 2\\.0000 on the same 6 validation pairs"
    )
    assert "Promote even if it evaluated worse" in refused and "Serving: **reply\\-a**" in refused
    assert "Promoted **reply\\-b** (was reply\\-a)" in admin_versions.promote_by_name(
        services, "reply-b", True, "ada"
    )
    assert "now serving reply\\-a" in admin_versions.rollback_serving(services, "ada")
    assert "Refused:** no model version named" in admin_versions.promote_by_name(
        services, "<b>x</b>", False, "ada"
    )
    assert (
        admin_versions.promote_by_name(services, " ", False, "ada")
        == "Type the name of a version to promote."
    )


def test_rankers_are_listed_refused_unless_kept_promoted_and_rolled_back(services, tmp_path):
    from chatbot.models.versions import promoted_version, register_version

    db = services.database
    for name, kept, gain, why in [
        ("ranker-a", True, 0.031, "kept: its picks beat retrieval's"),
        ("ranker-b", False, -0.012, "not kept: its picks lost to retrieval's"),
    ]:
        (tmp_path / name).mkdir()
        register_version(
            db,
            name=name,
            path=tmp_path / name,
            settings={},
            data_snapshot={"train_pairs": 40},
            metrics={"steps": 12, "kept": kept},
            evaluation={
                "kept": kept,
                "why": why,
                "gain": gain,
                "gain_stderr": 0.01,
                "val_pairs": 9,
            },
            kind="ranker",
        )
    rows = {row["ranker"]: row for row in admin_versions.rankers_frame(services).to_dict("records")}
    assert set(rows) == {"ranker-a", "ranker-b"}
    assert rows["ranker-a"]["gain over retrieval (ROUGE-L)"] == "+0.031 ± 0.010"
    assert (rows["ranker-b"]["val pairs"], rows["ranker-b"]["train pairs"]) == ("9", "40")
    assert rows["ranker-b"]["verdict"].startswith("not kept")
    # Reply versions and rankers keep to their own tables.
    assert admin_versions.versions_frame(services).empty

    # A ranker that did not win is refused wherever it is promoted from (the rule lives in
    # chatbot.models.versions), unless forced; one that won goes through.
    refused = admin_versions.promote_by_name(services, "ranker-b", False, "ada")
    assert (
        refused.startswith("**Refused:** not promoted: not kept") and "Promote even if" in refused
    )
    assert "no ranker" in refused
    assert "Promoted **ranker\\-a**" in admin_versions.promote_by_name(
        services, "ranker-a", False, "ada"
    )
    assert "ranker **ranker\\-a**" in admin_versions.serving_line(services)
    assert "(was ranker\\-a)" in admin_versions.promote_by_name(services, "ranker-b", True, "ada")
    assert "now serving ranker\\-a" in admin_versions.rollback_serving(
        services, "ada", kind="ranker"
    )
    assert "now serving no ranker" in admin_versions.rollback_serving(
        services, "ada", kind="ranker"
    )
    assert promoted_version(db, kind="ranker") is None
    assert promoted_version(db) is None  # the reply model was never touched


def test_the_console_builds_with_its_elements_and_checks_the_admin(services):
    import gradio as gr

    from chatbot.accounts.users import add_user

    console = admin.build_admin_console(services)
    assert isinstance(console, gr.Blocks)
    ids = {c.get("props", {}).get("elem_id") for c in console.config["components"]}
    for elem_id in (
        "upload",
        "upload-folder",
        "import",
        "import-summary",
        "rebuild-index",
        "index-progress",
        "train-minutes",
        "train-mode",
        "start-training",
        "training-progress",
        "loss-curve",
        "cancel-training",
        "versions",
        "promote-name",
        "promote",
        "force-promote",
        "rollback",
        "rankers",
        "rollback-ranker",
        "versions-status",
        "held",
        "held-id",
        "held-approve",
        "held-discard",
        "held-status",
    ):
        assert elem_id in ids, elem_id
    add_user(services.database, "ada", "a-long-password-1", "admin")
    add_user(services.database, "bob", "a-long-password-2", "agent")
    assert admin_common.admin_name(services, SimpleNamespace(username="ada")) == "ada"
    with pytest.raises(AccessDenied):
        admin_common.admin_name(services, SimpleNamespace(username="bob"))
    with pytest.raises(AccessDenied):
        admin_common.admin_name(services, SimpleNamespace(username=None))
