"""The resume state on disk: a typed record in JSON plus safetensors that comes back
exactly (optimizer moments, integer keys, tuples, RNG), continues training bit for bit,
and is refused, with the file named and nothing executed, when it is tampered with,
damaged, of another format version, or a pickled file from an older version."""

from __future__ import annotations

import copy
import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from chatbot.files import write_json_atomic
from chatbot.training import checkpoints as ck
from chatbot.training.resume import (
    LEGACY_RESUME_FILE,
    RESUME_JSON,
    ResumeState,
    ResumeStateError,
    check_fits,
    load_resume_state,
    remove_resume_state,
    resume_files_exist,
    save_resume_state,
)


class _Executes:
    """A pickle payload that creates a folder when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.AdamW]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.3), torch.nn.Linear(3, 2))
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    return model, optimizer


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 4)  # draws from the global RNG, like dropout
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def _state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> ResumeState:
    return ResumeState(
        step=step,
        epoch=1,
        cursor=3,
        total_steps=10,
        history=[{"step": 1, "train_loss": 0.5, "lr": 1e-2, "elapsed_s": 0.1, "tokens": 12}],
        validations=[{"step": 2, "val_loss": float("inf"), "checkpoint": None}],
        baseline_val_loss=1.25,
        bad_evals=1,
        train_seconds=3.5,
        train_tokens=24,
        compute_seconds=2.0,
        budget_s=None,
        val_seconds=0.25,
        fingerprint="abc",
        weights={n: p for n, p in model.named_parameters() if p.requires_grad},
        optimizer=dict(optimizer.state_dict()),
        torch_rng=torch.get_rng_state(),
    )


def _saved_run(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.optim.AdamW]:
    model, optimizer = _model_and_optimizer()
    _train(model, optimizer, 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_resume_state(run_dir, _state(model, optimizer, step=2))
    return run_dir, model, optimizer


def _tensors_file(run_dir: Path) -> Path:
    return run_dir / json.loads((run_dir / RESUME_JSON).read_text())["tensors_file"]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _point_json_at(run_dir: Path, tensors: Path) -> None:
    """What an attacker who can write the run folder does: make the JSON agree."""
    payload = json.loads((run_dir / RESUME_JSON).read_text())
    payload["tensors_sha256"] = _sha256(tensors)
    (run_dir / RESUME_JSON).write_text(json.dumps(payload))


def test_the_state_comes_back_exactly_and_training_continues_bit_for_bit(tmp_path):
    run_dir, model, optimizer = _saved_run(tmp_path)
    expected_rng = torch.get_rng_state()
    expected_optimizer = copy.deepcopy(optimizer.state_dict())
    straight = _train(model, optimizer, 3)

    state = load_resume_state(run_dir)
    assert state is not None
    assert (state.step, state.epoch, state.cursor, state.fingerprint) == (2, 1, 3, "abc")
    assert state.validations[0]["val_loss"] == float("inf") and state.budget_s is None
    assert torch.equal(state.torch_rng, expected_rng)
    groups = state.optimizer["param_groups"]
    assert isinstance(groups, list) and groups[0]["betas"] == (0.9, 0.95)  # a tuple again
    saved_state = state.optimizer["state"]
    assert isinstance(saved_state, dict) and set(saved_state) == {0, 1, 2, 3}  # int keys
    for index, entries in expected_optimizer["state"].items():
        for key, value in entries.items():
            assert saved_state[index][key].dtype == value.dtype
            assert torch.equal(saved_state[index][key], value)

    resumed_model, resumed_optimizer = _model_and_optimizer()  # fresh weights, fresh moments
    named = {n: p for n, p in resumed_model.named_parameters()}
    check_fits(state, run_dir / RESUME_JSON, named, [g["params"] for g in optimizer.param_groups])
    with torch.no_grad():
        for name, value in state.weights.items():
            named[name].copy_(value)
    resumed_optimizer.load_state_dict(state.optimizer)
    torch.set_rng_state(state.torch_rng)
    assert _train(resumed_model, resumed_optimizer, 3) == straight
    for a, b in zip(resumed_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_new_state_replaces_the_old_one_and_a_finished_run_removes_it(tmp_path):
    run_dir, model, optimizer = _saved_run(tmp_path)
    first = _tensors_file(run_dir)
    save_resume_state(run_dir, _state(model, optimizer, step=4))
    assert not first.exists() and _tensors_file(run_dir).name == "resume-000004.safetensors"
    loaded = load_resume_state(run_dir)
    assert loaded is not None and loaded.step == 4
    assert resume_files_exist(run_dir)
    remove_resume_state(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == []
    assert load_resume_state(run_dir) is None and not resume_files_exist(run_dir)


def test_a_pickled_resume_file_from_an_older_version_is_refused_unread(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "executed"
    torch.save({"step": 4, "payload": _Executes(marker)}, run_dir / LEGACY_RESUME_FILE)
    write_json_atomic(run_dir / ck.STATE_FILE, {"status": "running", "started_at": "x"})
    # The run is still found, so `train --resume` reaches the message below.
    assert ck.latest_unfinished_run(tmp_path) == run_dir
    with pytest.raises(ResumeStateError) as refused:
        load_resume_state(run_dir)
    message = str(refused.value)
    assert str(run_dir / LEGACY_RESUME_FILE) in message
    assert "older version" in message and "without --resume" in message
    assert not marker.exists()


def test_a_pickle_renamed_into_the_tensors_file_is_refused_unexecuted(tmp_path):
    run_dir, _, _ = _saved_run(tmp_path)
    marker = tmp_path / "executed"
    tensors = _tensors_file(run_dir)
    tensors.write_bytes(pickle.dumps(_Executes(marker)))
    with pytest.raises(ResumeStateError, match="does not match the checksum") as refused:
        load_resume_state(run_dir)
    assert str(tensors) in str(refused.value)
    _point_json_at(run_dir, tensors)  # the checksum agrees now: the parser still refuses
    with pytest.raises(ResumeStateError, match="not a readable safetensors file") as refused:
        load_resume_state(run_dir)
    assert str(tensors) in str(refused.value)
    assert not marker.exists()


def test_a_pickle_renamed_into_the_json_is_refused_unexecuted(tmp_path):
    run_dir, _, _ = _saved_run(tmp_path)
    marker = tmp_path / "executed"
    (run_dir / RESUME_JSON).write_bytes(pickle.dumps(_Executes(marker)))
    with pytest.raises(ResumeStateError, match="not a readable resume state") as refused:
        load_resume_state(run_dir)
    assert str(run_dir / RESUME_JSON) in str(refused.value)
    assert not marker.exists()


def _rewrite_header(path: Path, change: dict[str, list[int]]) -> None:
    """Change tensor shapes in a safetensors header, keeping the data as it is."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    for name, shape in change.items():
        header[name]["shape"] = shape
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size :])


def test_a_changed_header_is_refused(tmp_path):
    run_dir, _, _ = _saved_run(tmp_path)
    tensors = _tensors_file(run_dir)
    # A shape that no longer matches the data's length: checksum, then parser.
    _rewrite_header(tensors, {"model/0.weight": [4, 4]})
    with pytest.raises(ResumeStateError, match="does not match the checksum"):
        load_resume_state(run_dir)
    _point_json_at(run_dir, tensors)
    with pytest.raises(ResumeStateError, match="not a readable safetensors file") as refused:
        load_resume_state(run_dir)
    assert str(tensors) in str(refused.value)


def test_tensors_of_the_wrong_shape_are_refused_before_anything_is_copied(tmp_path):
    from safetensors.torch import load_file, save_file

    run_dir, model, optimizer = _saved_run(tmp_path)
    tensors = _tensors_file(run_dir)
    named = {n: p for n, p in model.named_parameters()}
    groups = [g["params"] for g in optimizer.param_groups]
    for key in ("model/0.weight", "optimizer/state/0/exp_avg"):
        content = load_file(str(tensors))
        content[key] = content[key].reshape(-1).contiguous()  # same data, another shape
        save_file(content, str(tensors))
        _point_json_at(run_dir, tensors)  # a consistent, well-formed, wrong file
        state = load_resume_state(run_dir)
        assert state is not None
        with pytest.raises(ResumeStateError, match="shape") as refused:
            check_fits(state, run_dir / RESUME_JSON, named, groups)
        assert str(run_dir / RESUME_JSON) in str(refused.value)
        save_resume_state(run_dir, _state(model, optimizer, step=2))  # a good one again


def test_another_format_version_or_a_broken_record_is_refused(tmp_path):
    run_dir, _, _ = _saved_run(tmp_path)
    path = run_dir / RESUME_JSON
    good = json.loads(path.read_text())
    path.write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(ResumeStateError, match="format version 99") as refused:
        load_resume_state(run_dir)
    assert str(path) in str(refused.value) and "without --resume" in str(refused.value)
    path.write_text(json.dumps({**good, "step": "2"}))
    with pytest.raises(ResumeStateError, match="'step'"):
        load_resume_state(run_dir)
    path.write_text(json.dumps({**good, "tensors_file": "../elsewhere.safetensors"}))
    with pytest.raises(ResumeStateError, match="names no tensors file"):
        load_resume_state(run_dir)
    optimizer = {"$dict": [["state", {"$eval": "os.system('true')"}], ["param_groups", []]]}
    path.write_text(json.dumps({**good, "optimizer": optimizer}))
    with pytest.raises(ResumeStateError, match="unexpected structure"):
        load_resume_state(run_dir)


def test_resuming_a_run_of_an_older_version_stops_with_the_message(tmp_path):
    """`chatbot train --resume` on a run whose resume state is a pickled resume.pt."""
    from chatbot.config import ensure_home
    from chatbot.settings import load_settings
    from chatbot.training.run import run_training

    settings = load_settings(home=tmp_path / "home")
    ensure_home(settings.paths)
    run_dir = settings.versions_dir / "runs" / "reply-old"
    run_dir.mkdir(parents=True)
    marker = tmp_path / "executed"
    torch.save({"payload": _Executes(marker)}, run_dir / LEGACY_RESUME_FILE)
    write_json_atomic(
        run_dir / ck.STATE_FILE,
        {
            "status": "running",
            "started_at": "2026-01-01",
            "training_settings": settings.training.model_dump(),
            "prompt": settings.prompt.model_dump(),
        },
    )
    with pytest.raises(ResumeStateError, match="older version") as refused:
        run_training(settings.paths, settings.training, settings.prompt, None, resume=True)  # type: ignore[arg-type]  # never reached
    assert "start a new run without --resume" in str(refused.value)
    assert not marker.exists()
