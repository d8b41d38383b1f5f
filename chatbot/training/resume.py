"""The resume state of a training run on disk: a versioned, typed record
(`ResumeState`) kept as two files in the run directory. `resume.json` holds the
numbers, the history and the structure of the optimizer state; a safetensors file next
to it (named in the JSON, with its SHA-256) holds every tensor: the trainable weights,
the optimizer's moments and step counters, and the torch RNG state as uint8.

Nothing is unpickled: JSON and safetensors are parsed as data, and a file that does not
parse, has another format version, does not match its checksum, or holds tensors of the
wrong shape is refused with a `ResumeStateError` naming the file. A run started by an
older version (a pickled `resume.pt`) is refused with a message, never loaded.

Writing order keeps a kill harmless: the tensors go to a new file, then `resume.json`
is replaced atomically, then older tensor files are deleted. What the loop does with
the state is `loop`'s job.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from chatbot.files import atomic_path
from chatbot.training import TrainingError

if TYPE_CHECKING:
    import torch

RESUME_JSON = "resume.json"
LEGACY_RESUME_FILE = "resume.pt"  # pickled, written before format version 1; never loaded
RESUME_FORMAT = "chatbot training resume state"
RESUME_FORMAT_VERSION = 1
_TMP_TENSORS = ".resume.safetensors.tmp"
_TMP_JSON = f".{RESUME_JSON}.tmp"

# A JSON value as json.loads returns it (the history and validation records hold these).
JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
Record: TypeAlias = "dict[str, JsonValue]"


class ResumeStateError(TrainingError):
    """A resume state that cannot be trusted or used; the message names the file."""


@dataclass
class ResumeState:
    """Everything a killed run needs to continue exactly where its last validation was."""

    step: int
    epoch: int
    cursor: int
    total_steps: int
    history: list[Record]
    validations: list[Record]
    baseline_val_loss: float
    bad_evals: int
    train_seconds: float
    train_tokens: int
    compute_seconds: float
    budget_s: float | None
    val_seconds: float
    fingerprint: str | None
    weights: dict[str, torch.Tensor]  # trainable parameters by name
    optimizer: dict[str, object]  # torch.optim.Optimizer.state_dict()
    torch_rng: torch.Tensor  # torch.get_rng_state(), uint8
    format_version: int = field(default=RESUME_FORMAT_VERSION)


def resume_files_exist(run_dir: Path) -> bool:
    """Whether the run left a resume state (of any version) behind."""
    return (run_dir / RESUME_JSON).is_file() or (run_dir / LEGACY_RESUME_FILE).is_file()


def remove_resume_state(run_dir: Path) -> None:
    """Delete the resume state (current and legacy files) of a finished run."""
    (run_dir / RESUME_JSON).unlink(missing_ok=True)
    (run_dir / LEGACY_RESUME_FILE).unlink(missing_ok=True)
    for path in [
        *run_dir.glob("resume-*.safetensors"),
        run_dir / _TMP_TENSORS,
        run_dir / _TMP_JSON,
    ]:
        path.unlink(missing_ok=True)


# --- writing ---------------------------------------------------------------------------


def save_resume_state(run_dir: Path, state: ResumeState) -> None:
    """Write `state` as resume.json plus its tensors file, replacing the previous state."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.weights.items():
        tensors[f"model/{name}"] = value
    optimizer = _encode(state.optimizer, "optimizer", tensors)
    tensors["rng/torch"] = state.torch_rng
    tensors_name = f"resume-{state.step:06d}.safetensors"
    tmp_tensors = run_dir / _TMP_TENSORS  # one name, so a kill's leftover is overwritten
    with atomic_path(run_dir / tensors_name, temp=tmp_tensors) as tmp:
        save_file(
            {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},
            str(tmp),
        )
    payload: dict[str, object] = {
        "format": RESUME_FORMAT,
        "format_version": RESUME_FORMAT_VERSION,
        "tensors_file": tensors_name,
        "tensors_sha256": _sha256(run_dir / tensors_name),
        "weights": sorted(state.weights),
        "optimizer": optimizer,
        **{name: getattr(state, name) for name in _SCALARS},
        "history": state.history,
        "validations": state.validations,
    }
    with atomic_path(run_dir / RESUME_JSON, temp=run_dir / _TMP_JSON) as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    for old in run_dir.glob("resume-*.safetensors"):
        if old.name != tensors_name:
            old.unlink(missing_ok=True)


_SCALARS: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "epoch": (int,),
    "cursor": (int,),
    "total_steps": (int,),
    "baseline_val_loss": (float, int),
    "bad_evals": (int,),
    "train_seconds": (float, int),
    "train_tokens": (int,),
    "compute_seconds": (float, int),
    "budget_s": (float, int, type(None)),
    "val_seconds": (float, int),
    "fingerprint": (str, type(None)),
}


def _encode(value: object, key: str, tensors: dict[str, torch.Tensor]) -> JsonValue:
    """JSON for an optimizer state dict; each tensor moves to `tensors` under `key`.
    Every dict and tuple is tagged, so that integer keys and tuples come back as they were."""
    import torch

    if isinstance(value, torch.Tensor):
        tensors[key] = value
        return {"$tensor": key}
    if isinstance(value, dict):
        return {"$dict": [[k, _encode(v, f"{key}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot keep a {type(value).__name__} in the resume state ({key})")


# --- reading ---------------------------------------------------------------------------


def load_resume_state(run_dir: Path) -> ResumeState | None:
    """The run's resume state, or None when it has none. Raises `ResumeStateError` when
    the files are from an older version, damaged or tampered with."""
    path = run_dir / RESUME_JSON
    if not path.is_file():
        legacy = run_dir / LEGACY_RESUME_FILE
        if legacy.is_file():
            raise ResumeStateError(
                f"{legacy}: this resume state was written by an older version of the "
                "assistant (a pickled file, which is never loaded); "
                "start a new run without --resume"
            )
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResumeStateError(f"{path}: not a readable resume state ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
        raise ResumeStateError(f"{path}: not a training resume state")
    version = payload.get("format_version")
    if version != RESUME_FORMAT_VERSION:
        raise ResumeStateError(
            f"{path}: resume state format version {version!r}, this version reads "
            f"{RESUME_FORMAT_VERSION}; start a new run without --resume"
        )
    tensors = _read_tensors(path, run_dir, payload)
    return _decode_state(path, payload, tensors)


def _read_tensors(path: Path, run_dir: Path, payload: dict[str, object]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    name = payload.get("tensors_file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise ResumeStateError(f"{path}: names no tensors file in the run directory")
    tensors_path = run_dir / name
    if not tensors_path.is_file():
        raise ResumeStateError(f"{tensors_path}: missing (named by {path})")
    if _sha256(tensors_path) != payload.get("tensors_sha256"):
        raise ResumeStateError(f"{tensors_path}: does not match the checksum in {path}")
    try:
        return load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ResumeStateError(f"{tensors_path}: not a readable safetensors file ({exc})") from None


def _decode_state(
    path: Path, payload: dict[str, object], tensors: dict[str, torch.Tensor]
) -> ResumeState:
    def fail(what: str) -> ResumeStateError:
        return ResumeStateError(f"{path}: {what}")

    scalars: dict[str, object] = {}
    for name, types in _SCALARS.items():
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            raise fail(f"'{name}' is missing or not a {types[0].__name__}")
        scalars[name] = float(value) if float in types and isinstance(value, int) else value
    records: dict[str, list[Record]] = {}
    for name in ("history", "validations"):
        value = payload.get(name)
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise fail(f"'{name}' is not a list of records")
        records[name] = cast(list[Record], value)
    names = payload.get("weights")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail("'weights' is not a list of parameter names")
    weights = {}
    for n in names:
        if f"model/{n}" not in tensors:
            raise fail(f"the tensors file lacks the weight {n!r}")
        weights[n] = tensors[f"model/{n}"]
    optimizer = _decode(payload.get("optimizer"), tensors, fail)
    if not isinstance(optimizer, dict) or set(optimizer) != {"state", "param_groups"}:
        raise fail("'optimizer' is not an optimizer state")
    rng = tensors.get("rng/torch")
    if rng is None or str(rng.dtype) != "torch.uint8" or rng.ndim != 1:
        raise fail("the tensors file lacks the RNG state (uint8)")
    return ResumeState(
        **cast(dict[str, Any], scalars),
        history=records["history"],
        validations=records["validations"],
        weights=weights,
        optimizer=cast(dict[str, object], optimizer),
        torch_rng=rng,
    )


def _decode(
    value: object,
    tensors: dict[str, torch.Tensor],
    fail: Callable[[str], ResumeStateError],
) -> object:
    """The inverse of `_encode`; anything but its own tags and plain JSON is refused."""
    if isinstance(value, list):
        return [_decode(v, tensors, fail) for v in value]
    if not isinstance(value, dict):
        if isinstance(value, float) and not math.isfinite(value):
            raise fail("the optimizer state holds a non-finite number")
        return value
    if len(value) != 1:
        raise fail("the optimizer state has an unexpected structure")
    ((tag, inner),) = value.items()
    if tag == "$tensor" and isinstance(inner, str):
        if inner not in tensors:
            raise fail(f"the tensors file lacks {inner!r}")
        return tensors[inner]
    if tag == "$tuple" and isinstance(inner, list):
        return tuple(_decode(v, tensors, fail) for v in inner)
    if tag == "$dict" and isinstance(inner, list):
        out: dict[object, object] = {}
        for item in inner:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int | str)):
                raise fail("the optimizer state has an unexpected structure")
            out[item[0]] = _decode(item[1], tensors, fail)
        return out
    raise fail("the optimizer state has an unexpected structure")


# --- applying --------------------------------------------------------------------------


def check_fits(
    state: ResumeState,
    path: Path,
    named_params: dict[str, torch.Tensor],
    groups: list[list[torch.Tensor]],
) -> None:
    """Refuse a state whose tensors do not have the shapes of this model and optimizer
    (`named_params`: the trainable parameters; `groups`: the optimizer's parameter groups),
    before anything is copied: a wrong shape would otherwise broadcast or fail mid-step."""
    import torch

    def fail(what: str) -> ResumeStateError:
        return ResumeStateError(f"{path}: {what}; start a new run without --resume")

    if set(state.weights) != set(named_params):
        raise fail("its weights are not this model's trainable parameters")
    for name, value in state.weights.items():
        if value.shape != named_params[name].shape:
            raise fail(f"the weight {name!r} has shape {tuple(value.shape)}")
    if state.torch_rng.shape != torch.get_rng_state().shape:
        raise fail("the RNG state has the wrong size")
    saved_groups = state.optimizer.get("param_groups")
    saved_state = state.optimizer.get("state")
    if not isinstance(saved_groups, list) or not isinstance(saved_state, dict):
        raise fail("the optimizer state has an unexpected structure")
    params = [p for group in groups for p in group]
    if [len(g.get("params", [])) for g in saved_groups if isinstance(g, dict)] != [
        len(g) for g in groups
    ]:
        raise fail("the optimizer state has other parameter groups")
    for index, entries in saved_state.items():
        if (
            not isinstance(index, int)
            or not 0 <= index < len(params)
            or not isinstance(entries, dict)
        ):
            raise fail("the optimizer state names a parameter that does not exist")
        for key, value in entries.items():
            if (
                isinstance(value, torch.Tensor)
                and value.ndim
                and value.shape != params[index].shape
            ):
                raise fail(f"the optimizer's {key!r} of parameter {index} has the wrong shape")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
