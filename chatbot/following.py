"""Following whichever version of something is promoted now (a reply model, a ranker,
an index), without a restart: `Follower` asks a cheap question, "which version is
promoted?" (a database row, a pointer file), at most every `check_interval` seconds,
and loads a version only when the answer changes.

The one failure rule, for everything that follows a version:
- A failure to tell which version is promoted, or to load it, never replaces what is
  served: the version loaded last keeps serving, `error` says why, and the failure is
  logged once (again only when the reason changes), with a traceback only when it is
  not one of the project's own errors.
- The failed version is tried again at the next check, so a repair is picked up
  without promoting anything anew.
- Only while nothing has been served yet is the failure raised to the caller: there is
  nothing to keep. A follower given a `start` (what serves until the promoted version
  loads: the index opened at start, "no ranker") never raises.
- `error` is cleared by the first check that finds the promoted version serving.

What "promoted" means and how one version is loaded are the caller's (`promoted`,
`load`); this module knows neither files nor the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from chatbot.errors import ChatbotError

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

DEFAULT_CHECK_INTERVAL = 5.0


class Follower(Generic[K, T]):
    """Keeps the loaded version of whatever `promoted()` names (its key), loading a
    newly promoted one with `load(key)`. Thread-safe; between checks `get` costs a
    clock read. `what` names the thing in log lines ("reply model", "ranker")."""

    def __init__(
        self,
        promoted: Callable[[], K],
        load: Callable[[K], T],
        *,
        what: str,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        start: tuple[K, T] | None = None,
    ) -> None:
        self._promoted = promoted
        self._load = load
        self.what = what
        self.check_interval = check_interval
        self.error: str | None = None
        self._serving: tuple[K, T] | None = start
        self._up_to_date = False
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    @property
    def key(self) -> K | None:
        """The key of the version serving (None before the first load)."""
        return self._serving[0] if self._serving is not None else None

    @property
    def value(self) -> T | None:
        """The version serving, without a check (None before the first load)."""
        return self._serving[1] if self._serving is not None else None

    @property
    def up_to_date(self) -> bool:
        """True when the last check found the promoted version serving."""
        return self._up_to_date

    def get(self) -> T:
        """The version to use now, after a check if one is due. Raises what the check
        raised only while nothing has been served yet (see the module's rule)."""
        self.refresh()
        serving = self._serving
        if serving is None:  # not reached: refresh raises while nothing is served
            raise RuntimeError(f"no {self.what} is loaded")
        return serving[1]

    def refresh(self, *, force: bool = False) -> bool:
        """Check which version is promoted (when a check is due, or `force`) and swap it
        in if it changed; True when a new version was swapped in."""
        if not force and self._fresh():
            return False
        with self._lock:
            if not force and self._fresh():  # another thread checked while this one waited
                return False
            self._checked_at = time.monotonic()
            try:
                key = self._promoted()
                if self._serving is not None and key == self._serving[0]:
                    self._up_to_date, self.error = True, None
                    return False
                value = self._load(key)
            except Exception as exc:
                self._failed(exc)
                return False
            if self._serving is not None:
                log.info("%s: serving %s (was %s)", self.what, key, self._serving[0])
            self._serving, self._up_to_date, self.error = (key, value), True, None
            return True

    def _fresh(self) -> bool:
        """Something serves and it was checked less than `check_interval` ago."""
        return (
            self._serving is not None and time.monotonic() - self._checked_at < self.check_interval
        )

    def _failed(self, exc: Exception) -> None:
        self._up_to_date = False
        reason = str(exc) or type(exc).__name__
        if self._serving is None:
            self.error = reason
            raise exc
        if reason != self.error:
            log.error(
                "%s: keeping %s, the promoted version cannot be served: %s",
                self.what,
                self._serving[0],
                reason,
                exc_info=not isinstance(exc, ChatbotError),
            )
        self.error = reason
