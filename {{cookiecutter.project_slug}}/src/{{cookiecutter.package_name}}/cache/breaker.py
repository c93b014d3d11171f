"""A circuit breaker for cache calls: N failures in a row open it, one trial closes it.

- closed: calls go through. `failure_threshold` failures in a row, all within
  `window_seconds` and stretching over at least `min_span_seconds`, open the breaker; a
  success in between starts the count again.
- open: `allow()` answers None without any I/O, so a dead or black-holed Redis costs a request
  nothing. After `cooldown_seconds` the next caller becomes the single trial (half-open).
- half-open: exactly one call is in flight; everyone else is still refused. Its success closes
  the breaker, its failure opens it for another cool-down, its cancellation frees the slot.

Every admitted call carries a `Ticket`: the generation it was admitted in and whether it is
the trial. A verdict from an older generation is ignored, so a call admitted before the
breaker opened that succeeds late cannot close it, and only the trial can free or decide the
half-open slot.

Why failures *in a row*: a 50 ms timeout also measures event-loop lag. Under CPU saturation
a few calls time out although Redis answered; successes between them keep the breaker closed.
A dead or black-holed Redis fails every call, so it still opens after N calls. The price: a
Redis that fails one call in two never opens the breaker (each failure costs one timeout).

Why a minimum span: one stall of the event loop (a long request, a full garbage collection)
times out every call in flight at the same instant, with no success in between, although
Redis answered each in time; `make profile` saw the breaker open that way on a healthy Redis
and then serve the cache's reads from the database for a whole cool-down, on a process already
short of CPU (the loop lagged up to 214 ms under a list load, the timeout is 250 ms). A dead
or black-holed Redis keeps failing, so it still opens the breaker, at most `min_span_seconds`
later.

Why not a library: purgatory and aiobreaker both let *every* concurrent caller through while
half-open (each one then waits for the Redis timeout against a black-holed server), apply a
late verdict of a call admitted in an earlier state to the current state (a late success
closes a half-open breaker), and read the wall clock (time.time, datetime.utcnow), which tests
cannot move; purgatory also awaits its state store on every call. The state machine below is
small, synchronous (no await on the hot path) and uses a monotonic clock tests can replace.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.StrEnum):
    """Where the breaker is; the metric exports the value's index (0, 1, 2)."""

    closed = "closed"
    half_open = "half_open"
    open = "open"


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof that `allow()` admitted a call: hand it back with the call's outcome."""

    generation: int
    trial: bool


StateListener = Callable[[BreakerState, BreakerState, int], None]


class CircuitBreaker:
    """Decides, without I/O, whether the next call to a dependency may be attempted."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        window_seconds: float,
        cooldown_seconds: float,
        min_span_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.min_span_seconds = min_span_seconds
        self._listeners: list[StateListener] = []
        self.clock = clock  # replaceable: tests move time by hand
        self._state = BreakerState.closed
        self._generation = 0  # bumped on every state change
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

    def allow(self) -> Ticket | None:
        """A ticket when a call may be attempted now (report its outcome with it), else None."""
        if self._state is BreakerState.closed:
            return Ticket(self._generation, trial=False)
        if self._trial_in_flight:
            return None
        if self._state is BreakerState.open:
            if self.clock() - self._opened_at < self.cooldown_seconds:
                return None
            self._move(BreakerState.half_open)
        self._trial_in_flight = True
        return Ticket(self._generation, trial=True)

    def record_success(self, ticket: Ticket) -> None:
        """The call admitted with `ticket` succeeded."""
        if ticket.generation != self._generation:
            return  # admitted before the last state change: says nothing about now
        if ticket.trial:
            self._trial_in_flight = False
            self._failures.clear()
            self._move(BreakerState.closed)
        else:
            self._failures.clear()  # failures must come in a row

    def record_failure(self, ticket: Ticket) -> None:
        """The call admitted with `ticket` failed (error or timeout)."""
        if ticket.generation != self._generation:
            return
        now = self.clock()
        if ticket.trial:
            self._trial_in_flight = False
            self._opened_at = now
            self._move(BreakerState.open)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_seconds:
            self._failures.popleft()
        spans = now - self._failures[0] >= self.min_span_seconds
        if len(self._failures) >= self.failure_threshold and spans:
            self._opened_at = now
            self._move(BreakerState.open)

    def abandon(self, ticket: Ticket) -> None:
        """The call ended without a verdict (cancelled): a trial frees its slot."""
        if ticket.trial and ticket.generation == self._generation:
            self._trial_in_flight = False

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._generation += 1
            for listener in self._listeners:
                listener(old, new, len(self._failures))
