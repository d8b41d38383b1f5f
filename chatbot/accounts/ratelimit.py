"""A sliding-window limit on login attempts per client (e.g. per IP address).

In-process only: each web worker keeps its own counts, so with N workers a client
gets up to N times the limit, and a restart forgets them. The guard every worker
shares is the login throttle kept in the database (`chatbot.accounts.throttle`); this limiter only slows one client down cheaply, before any password
is hashed. Which key to use (and whether to trust proxy headers) is `chatbot.web`'s
decision.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginRateLimiter:
    """At most `max_attempts` attempts per key in any `window_seconds`. Refused attempts
    are not counted, so a client that keeps trying gets in again as soon as its oldest
    counted attempt leaves the window. Memory is bounded: keys whose attempts have all
    left the window are dropped, and beyond `max_keys` keys the least recently seen go
    first. Thread-safe."""

    def __init__(
        self,
        max_attempts: int,
        window_seconds: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_attempts = max_attempts
        self.window_seconds = float(window_seconds)
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> times of its counted attempts, oldest first; the dict is ordered by
        # when each key was last seen, least recent first.
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()
        self._next_sweep = 0.0

    def hit(self, key: str) -> bool:
        """Record an attempt by `key`: True when it is allowed, False when `key` is over
        the limit (the attempt is then not counted)."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            times = self._attempts.get(key)
            if times is None:
                times = self._attempts[key] = deque()
            else:
                self._attempts.move_to_end(key)
                self._expire(times, now)
            if len(times) >= self.max_attempts:
                return False
            times.append(now)
            while len(self._attempts) > self.max_keys:
                self._attempts.popitem(last=False)
            return True

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0.0 when it may now."""
        with self._lock:
            times = self._attempts.get(key)
            if not times:
                return 0.0
            now = self._clock()
            self._expire(times, now)
            if len(times) < self.max_attempts:
                return 0.0
            return max(0.0, times[0] + self.window_seconds - now)

    def reset(self, key: str) -> None:
        """Forget `key`'s attempts."""
        with self._lock:
            self._attempts.pop(key, None)

    def __len__(self) -> int:
        """How many keys are remembered (for tests and monitoring)."""
        with self._lock:
            return len(self._attempts)

    def _expire(self, times: deque[float], now: float) -> None:
        horizon = now - self.window_seconds
        while times and times[0] <= horizon:
            times.popleft()

    def _sweep(self, now: float) -> None:
        """Drop keys with no attempt left in the window, at most once per window."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window_seconds
        horizon = now - self.window_seconds
        stale = [key for key, times in self._attempts.items() if not times or times[-1] <= horizon]
        for key in stale:
            del self._attempts[key]
