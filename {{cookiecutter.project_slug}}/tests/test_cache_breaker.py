"""The circuit breaker's state machine, on a clock the test moves by hand."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.cache.breaker import BreakerState, CircuitBreaker


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


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_opens_after_n_failures_within_the_window() -> None:
    breaker, clock, changes = make()
    fail(breaker, 2)
    clock.now += 11  # those two leave the window
    fail(breaker, 2)
    assert breaker.state is BreakerState.closed
    fail(breaker, 1)
    assert breaker.state is BreakerState.open
    assert changes == [("closed", "open")]


def test_successes_do_not_hide_failures_inside_the_window() -> None:
    breaker, _clock, _changes = make()
    fail(breaker, 2)
    assert breaker.allow()
    breaker.record_success()
    fail(breaker, 1)
    assert breaker.state is BreakerState.open


def test_open_refuses_until_the_cooldown_then_admits_exactly_one_trial() -> None:
    breaker, clock, changes = make()
    fail(breaker, 3)
    refused = [breaker.allow() for _ in range(100)]
    assert not any(refused)
    clock.now += 5
    assert breaker.allow()  # the trial
    assert breaker.state is BreakerState.half_open
    assert not breaker.allow()  # everyone else keeps bypassing while it is in flight
    breaker.record_success()
    assert breaker.state is BreakerState.closed
    assert breaker.allow()
    # One log/metric event per transition, none per refused call.
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_trial_reopens_for_a_new_cooldown() -> None:
    breaker, clock, _changes = make()
    fail(breaker, 3)
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_an_abandoned_trial_frees_the_slot() -> None:
    breaker, clock, _changes = make()
    fail(breaker, 3)
    clock.now += 5
    assert breaker.allow()
    breaker.abandon()
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.closed
