"""The circuit breaker's state machine, on a clock the test moves by hand."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.cache.breaker import BreakerState, CircuitBreaker, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock = Clock()
    breaker = CircuitBreaker(
        failure_threshold=3, window_seconds=10, cooldown_seconds=5, clock=clock
    )
    changes: list[tuple[str, str]] = []
    breaker.subscribe(lambda old, new, _n: changes.append((old.value, new.value)))
    return breaker, clock, changes


def admit(breaker: CircuitBreaker) -> Ticket:
    ticket = breaker.allow()
    assert ticket is not None
    return ticket


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure(admit(breaker))


def test_opens_after_n_failures_in_a_row_within_the_window() -> None:
    breaker, clock, changes = make()
    fail(breaker, 2)
    clock.now += 11  # those two leave the window
    fail(breaker, 2)
    assert breaker.state is BreakerState.closed
    fail(breaker, 1)
    assert breaker.state is BreakerState.open
    assert changes == [("closed", "open")]


def test_a_burst_of_failures_at_one_instant_needs_the_minimum_span_to_open() -> None:
    # One event-loop stall times out every call in flight at once; a dead Redis keeps failing.
    clock = Clock()
    breaker = CircuitBreaker(
        failure_threshold=3,
        window_seconds=10,
        cooldown_seconds=5,
        min_span_seconds=0.5,
        clock=clock,
    )
    fail(breaker, 30)
    assert breaker.state is BreakerState.closed
    breaker.record_success(admit(breaker))  # after the stall, Redis answers again
    fail(breaker, 2)
    clock.now += 0.4
    fail(breaker, 1)
    assert breaker.state is BreakerState.closed
    clock.now += 0.1
    fail(breaker, 1)  # four in a row over 0.5 s
    assert breaker.state is BreakerState.open


def test_a_success_between_failures_starts_the_count_again() -> None:
    # Sporadic timeouts (event-loop lag under load) between answered calls never open it.
    breaker, _clock, _changes = make()
    for _ in range(10):
        fail(breaker, 2)
        breaker.record_success(admit(breaker))
    assert breaker.state is BreakerState.closed
    fail(breaker, 3)
    assert breaker.state is BreakerState.open


def test_open_refuses_until_the_cooldown_then_admits_exactly_one_trial() -> None:
    breaker, clock, changes = make()
    fail(breaker, 3)
    refused = [breaker.allow() for _ in range(100)]
    assert refused == [None] * 100
    clock.now += 5
    trial = admit(breaker)
    assert trial.trial
    assert breaker.state is BreakerState.half_open
    assert breaker.allow() is None  # everyone else keeps bypassing while it is in flight
    breaker.record_success(trial)
    assert breaker.state is BreakerState.closed
    assert breaker.allow() is not None
    # One log/metric event per transition, none per refused call.
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_trial_reopens_for_a_new_cooldown() -> None:
    breaker, clock, _changes = make()
    fail(breaker, 3)
    clock.now += 5
    breaker.record_failure(admit(breaker))
    assert breaker.state is BreakerState.open
    clock.now += 4
    assert breaker.allow() is None
    clock.now += 1
    assert breaker.allow() is not None


def test_an_abandoned_trial_frees_the_slot() -> None:
    breaker, clock, _changes = make()
    fail(breaker, 3)
    clock.now += 5
    breaker.abandon(admit(breaker))
    trial = admit(breaker)
    breaker.record_success(trial)
    assert breaker.state is BreakerState.closed


def test_a_late_success_from_before_the_opening_does_not_close_it() -> None:
    breaker, clock, _changes = make()
    slow = admit(breaker)  # in flight while three others fail and open the breaker
    fail(breaker, 3)
    assert breaker.state is BreakerState.open
    breaker.record_success(slow)
    assert breaker.state is BreakerState.open  # no trial yet, no cool-down: still open
    assert breaker.allow() is None
    clock.now += 5
    assert breaker.allow() is not None  # the cool-down and the trial still decide


def test_only_the_trial_decides_while_half_open() -> None:
    breaker, clock, _changes = make()
    old = [admit(breaker) for _ in range(3)]  # admitted while closed, still in flight
    for ticket in old[:2]:
        breaker.record_failure(ticket)
    fail(breaker, 1)
    assert breaker.state is BreakerState.open
    clock.now += 5
    trial = admit(breaker)
    breaker.abandon(old[2])  # an older call cancelled: the trial's slot stays taken
    assert breaker.allow() is None
    breaker.record_failure(old[2])  # ...and its late failure is no verdict either
    assert breaker.state is BreakerState.half_open
    breaker.record_success(trial)
    assert breaker.state is BreakerState.closed
