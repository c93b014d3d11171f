"""A circuit breaker for cache calls: N failures in a window open it, one trial closes it.

- closed: calls go through; each failure is remembered for `window_seconds`. When
  `failure_threshold` failures fall inside the window, the breaker opens.
- open: `allow()` answers False without any I/O, so a dead or black-holed Redis costs a request
  nothing. After `cooldown_seconds` the next caller becomes the single trial (half-open).
- half-open: exactly one call is in flight; everyone else is still refused. Its success closes
  the breaker, its failure opens it for another cool-down.

Why not a library: purgatory and aiobreaker both let *every* concurrent caller through while
half-open (each one then waits for the Redis timeout against a black-holed server), count
consecutive failures rather than failures in a window, and read the wall clock; purgatory also
awaits its state store on every call. The state machine below is small, synchronous (no await
on the hot path) and uses a monotonic clock that tests can replace.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    """Where the breaker is; the metric exports the value's index (0, 1, 2)."""

    closed = "closed"
    half_open = "half_open"
    open = "open"


StateListener = Callable[[BreakerState, BreakerState, int], None]


class CircuitBreaker:
    """Decides, without I/O, whether the next call to a dependency may be attempted."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        window_seconds: float,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self._listeners: list[StateListener] = []
        self.clock = clock  # replaceable: tests move time by hand
        self._state = BreakerState.closed
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._trial_in_flight = False

    def subscribe(self, listener: StateListener) -> None:
        """Call `listener(old, new, failures)` on every state change (not per call)."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its cool-down still reads "open")."""
        return self._state

    def allow(self) -> bool:
        """May a call be attempted now? When it returns True, report the outcome."""
        if self._state is BreakerState.closed:
            return True
        if self._trial_in_flight:
            return False
        if self._state is BreakerState.open:
            if self.clock() - self._opened_at < self.cooldown_seconds:
                return False
            self._move(BreakerState.half_open)
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        """The call that `allow()` admitted succeeded."""
        if self._state is not BreakerState.closed:
            self._trial_in_flight = False
            self._failures.clear()
            self._move(BreakerState.closed)

    def record_failure(self) -> None:
        """The call that `allow()` admitted failed (error or timeout)."""
        now = self.clock()
        if self._state is not BreakerState.closed:
            self._trial_in_flight = False
            self._opened_at = now
            self._move(BreakerState.open)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_seconds:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold:
            self._opened_at = now
            self._move(BreakerState.open)

    def abandon(self) -> None:
        """The admitted call ended without a verdict (cancelled): free the trial slot."""
        self._trial_in_flight = False

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            for listener in self._listeners:
                listener(old, new, len(self._failures))
