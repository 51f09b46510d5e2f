"""The circuit breaker's state machine, table-driven with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pgmcp.errors import GenerationFailed, LLMUnavailable
from pgmcp.llm import CircuitBreaker


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


# Each step: (action, expected outcome, expected state afterwards).
# Actions: "ok" / "down" / "bad" = a call that succeeds / raises LLMUnavailable / raises
# GenerationFailed; "+N" = advance the clock N seconds.
# Outcomes: "ok", "down", "bad" (the call ran and gave that), "refused" (the breaker raised
# without running the call), "-" for clock steps.
SCENARIOS = {
    "stays closed below the threshold": [
        ("down", "down", "closed"), ("down", "down", "closed"), ("ok", "ok", "closed"),
        ("down", "down", "closed"), ("down", "down", "closed"),
    ],
    "opens after 3 consecutive failures and refuses": [
        ("down", "down", "closed"), ("down", "down", "closed"), ("down", "down", "open"),
        ("ok", "refused", "open"), ("+29", "-", "open"), ("ok", "refused", "open"),
    ],
    "half-open after recovery, success closes": [
        ("down", "down", "closed"), ("down", "down", "closed"), ("down", "down", "open"),
        ("+30", "-", "half_open"), ("ok", "ok", "closed"), ("down", "down", "closed"),
    ],
    "half-open trial failure re-opens for a full period": [
        ("down", "down", "closed"), ("down", "down", "closed"), ("down", "down", "open"),
        ("+30", "-", "half_open"), ("down", "down", "open"), ("+29", "-", "open"),
        ("ok", "refused", "open"), ("+1", "-", "half_open"), ("ok", "ok", "closed"),
    ],
    "an unusable answer proves the provider is up": [
        ("down", "down", "closed"), ("down", "down", "closed"), ("bad", "bad", "closed"),
        ("down", "down", "closed"), ("down", "down", "closed"), ("down", "down", "open"),
        ("+30", "-", "half_open"), ("bad", "bad", "closed"),
    ],
}


async def _run(action: str) -> None:
    if action == "down":
        raise LLMUnavailable("down")
    if action == "bad":
        raise GenerationFailed("bad")


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
async def test_breaker_scenarios(steps: list[tuple[str, str, str]]) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, recovery=30.0, clock=clock)
    for i, (action, expected, state) in enumerate(steps):
        ran = False
        if action.startswith("+"):
            clock.now += float(action[1:])
            outcome = "-"
        else:
            async def call(action: str = action) -> str:
                nonlocal ran
                ran = True
                await _run(action)
                return "ok"

            try:
                outcome = await breaker.call(call)
            except LLMUnavailable as exc:
                outcome = "down" if ran else "refused"
                if not ran:
                    assert "circuit open" in str(exc)
            except GenerationFailed:
                outcome = "bad"
        assert (outcome, breaker.state) == (expected, state), f"step {i}: {action}"


async def test_open_message_says_when_it_retries() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, recovery=30.0, clock=clock, name="openai")
    with pytest.raises(LLMUnavailable):
        await breaker.call(lambda: _run("down"))
    clock.now += 12
    with pytest.raises(LLMUnavailable, match=r"openai failed 1 times in a row.*next try in 18s") as info:
        await breaker.call(lambda: _run("ok"))
    assert info.value.code == "llm_unavailable"


def test_half_open_admits_one_trial_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, recovery=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.before_call()  # the trial
    with pytest.raises(LLMUnavailable, match="trial call in flight"):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()
