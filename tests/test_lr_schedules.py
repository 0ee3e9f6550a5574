"""Marigold's IterExponential learning-rate multiplier: linear warm-up, exponential decay to final_ratio, then flat."""
from __future__ import annotations

import pytest

from genpercept_lessons.lr_schedules import iter_exponential


def test_warm_up_ramps_linearly_to_one():
    # the first step already trains at 1/warmup; the first decay step is exactly 1
    got = [iter_exponential(s, 100, 4, 0.01) for s in range(6)]
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.01 ** (1 / 96)])


def test_decay_is_exponential_to_final_ratio_then_flat():
    assert iter_exponential(28, 100, 4, 0.01) == pytest.approx(0.01 ** 0.25)  # a quarter of the decay
    assert iter_exponential(52, 100, 4, 0.01) == pytest.approx(0.1)  # halfway: sqrt(0.01), not the linear 0.505
    assert iter_exponential(100, 100, 4, 0.01) == pytest.approx(0.01)
    assert iter_exponential(250, 100, 4, 0.01) == pytest.approx(0.01)  # past total_steps it stays at final_ratio
    assert iter_exponential(0, 10, 0, 0.5) == 1.0  # no warm-up: starts at 1


@pytest.mark.parametrize("kwargs, match", [
    ({"total_steps": 10, "warmup_steps": 10}, "warmup_steps"),
    ({"total_steps": 0, "warmup_steps": 0}, "total_steps"),
    ({"total_steps": 10, "warmup_steps": -1}, "warmup_steps"),
    ({"total_steps": 10, "warmup_steps": 2, "final_ratio": 0.0}, "final_ratio"),
    ({"total_steps": 10, "warmup_steps": 2, "final_ratio": 1.5}, "final_ratio"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        iter_exponential(0, **kwargs)
