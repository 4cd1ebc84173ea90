from __future__ import annotations

import pytest

from mfpi_deploy.timing import Ratio, interleaved, ratio


def test_rounds_interleave_and_reverse_their_order():
    calls: list[str] = []
    runners = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    seconds = interleaved(runners, runs=3, warmup=1)
    assert calls == list("abccbaabccba")  # warm-up, then 3 timed rounds, every other one reversed
    assert {k: len(v) for k, v in seconds.items()} == {"a": 3, "b": 3, "c": 3}


def test_seconds_come_from_the_clock_and_hooks_bracket_each_call():
    ticks = iter(range(100))
    events: list[object] = []
    seconds = interleaved(
        {"x": lambda: events.append("run")},
        runs=2,
        warmup=0,
        around=events.append,
        after_round=lambda r, s: events.append(("round", r, list(s["x"]))),
        clock=lambda: float(next(ticks)) ** 2,  # call n reads n^2 then (n+1)^2: 1, then 5 seconds
    )
    assert seconds == {"x": [1.0, 5.0]}
    assert events == ["x", "run", None, ("round", 0, [1.0]), "x", "run", None, ("round", 1, [1.0, 5.0])]
    with pytest.raises(ValueError):
        interleaved({"x": lambda: None}, runs=0)


def test_ratio_is_taken_round_by_round():
    r = ratio([2.0, 4.0, 9.0], [1.0, 4.0, 3.0])  # per round: 2, 1, 3; the ratio of medians would be 4/3
    assert r == Ratio(2.0, 1.0, 3.0, 3)
    assert str(r) == "2.00x (1.00-3.00 over 3 rounds)"
    with pytest.raises(ValueError):
        ratio([1.0], [1.0, 2.0])
