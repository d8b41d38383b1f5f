"""A bounded wait for the reply model: `BoundedModelSource.get(timeout)` returns the
source's (model, tokenizer, version) or raises `ModelNotReady` once `timeout` seconds
have passed, while the load goes on in the background for the turns after. The first
turns after a start are then answered from retrieved answers instead of waiting for a
model being converted or loaded. Loading itself is the source's job."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Protocol, TypeAlias

from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from torch.nn import Module
    from transformers import PreTrainedTokenizerBase

    # (model, tokenizer, version name): the model may be an int8 copy, a plain Module.
    LoadedModel: TypeAlias = tuple[Module, PreTrainedTokenizerBase, str]


class ReplyModelSource(Protocol):
    def get(self) -> LoadedModel:
        """(model, tokenizer, version name) of the reply model to use now."""
        ...


class ModelNotReady(ChatbotError):
    """The reply model did not load within the wait allowed for one turn."""


class BoundedModelSource:
    def __init__(self, source: ReplyModelSource):
        self.source = source
        self._lock = threading.Lock()
        self._pending: Future[LoadedModel] | None = None

    def _start(self) -> Future[LoadedModel]:
        future: Future[LoadedModel] = Future()

        def run() -> None:
            try:
                future.set_result(self.source.get())
            except BaseException as exc:
                future.set_exception(exc)

        # A daemon thread: a load that never ends must not keep the process alive.
        threading.Thread(target=run, name="reply-model-load", daemon=True).start()
        return future

    def get(self, timeout: float) -> LoadedModel:
        with self._lock:
            # A finished load is asked again each turn: the source may have a newly promoted version.
            if self._pending is None or self._pending.done():
                self._pending = self._start()
            pending = self._pending
        try:
            return pending.result(timeout=timeout)
        except FutureTimeout:
            raise ModelNotReady(
                f"the reply model was not ready within {timeout:g} s (still loading)"
            ) from None
