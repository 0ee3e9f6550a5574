"""The exercise checkers: known-good answers (the published solutions) pass, known-bad ones fail, blanks are
reported as not attempted, and hints/solutions behave."""
from __future__ import annotations

import textwrap
import types

import numpy as np
import pytest
import torch

from genpercept_lessons.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED, ____, lesson
from genpercept_lessons.exercises._fixtures import ddim_scheduler

QUESTIONS = [(n, q) for n in range(1, 7) for q in ("q1", "q2")]


def _run_solution(ex):
    """Execute a solution's code; return the function or value it defines."""
    namespace = {"np": np, "torch": torch, "pipe": types.SimpleNamespace(scheduler=ddim_scheduler())}
    before = set(namespace)
    exec(textwrap.dedent(ex.solution_code), namespace)  # noqa: S102 - our own solution text
    (name,) = set(namespace) - before - {"__builtins__"}
    return namespace[name]


@pytest.mark.parametrize("number, name", QUESTIONS)
def test_the_published_solution_passes(number, name, capsys):
    ex = getattr(lesson(number), name)
    assert ex.check(_run_solution(ex)) == CORRECT
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("number, name", QUESTIONS)
def test_blanks_are_not_attempted(number, name, capsys):
    ex = getattr(lesson(number), name)
    assert ex.check(____) == NOT_ATTEMPTED
    assert ex.check(lambda *args: ____) in (NOT_ATTEMPTED, INCORRECT)  # a function still returning ____
    assert "not attempted" in capsys.readouterr().out


def _off_by_one_leading(n):
    r = 1000 // n
    return [i * r for i in reversed(range(n))]  # forgot steps_offset


def _trailing_wrong(n):
    return [int(t) for t in np.round(np.arange(1000, 0, -1000 / n))]  # forgot the −1


def _delta1_pooled(p, g, m):
    r = np.maximum(p[m] / g[m], g[m] / p[m])
    return float(np.mean(r < 1.25))  # pooled instead of per image


BAD = {
    (1, "q1"): [lambda vae, x: vae.encode(x).latent_dist.mode(),  # forgot the scaling factor
                lambda vae, x: vae.encode(x).latent_dist.sample() * vae.config.scaling_factor],
    (1, "q2"): [lambda im: im.mean(1), lambda im: (im.mean(1) + 1) / 2, lambda im: (im[:, 0].clamp(-1, 1) + 1) / 2],
    (2, "q1"): [_off_by_one_leading, lambda n: list(range(n))],
    (2, "q2"): [0.5, float(ddim_scheduler().alphas_cumprod[999])],
    (3, "q1"): [_trailing_wrong, lambda n: [999] * n],
    (3, "q2"): [_delta1_pooled, lambda p, g, m: 0.5],
    (4, "q1"): [lambda z, v, a: a * z - (1 - a) * v, lambda z, v, a: -v],
    (4, "q2"): [float(ddim_scheduler().alphas_cumprod[999]), 1.0],
    (5, "q1"): [lambda p, g, m: (1.0, 0.0), lambda p, g, m: tuple(np.polyfit(p.ravel(), g.ravel(), 1))],
    (5, "q2"): [lambda u, vae, lat, text, a: torch.zeros(lat.shape[0], 16, 16)],
    (6, "q1"): [lambda p, g, m: torch.arccos((p * g).sum(1).clamp(-1, 1)).mean(),  # ignores the mask
                lambda p, g, m: (1 - (p * g).sum(1))[m].mean()],
    (6, "q2"): [lambda p, g, m: float(np.mean([np.degrees(np.arccos(np.clip((a[k] * b[k]).sum(-1), -1, 1))).mean()
                                               for a, b, k in zip(p, g, m)]))],  # per image, not pooled
}


@pytest.mark.parametrize("key", sorted(BAD))
def test_known_wrong_answers_fail_with_a_reason(key, capsys):
    ex = getattr(lesson(key[0]), key[1])
    for answer in BAD[key]:
        assert ex.check(answer) == INCORRECT, answer
        out = capsys.readouterr().out
        assert "✗" in out and len(out.strip()) > len(ex.title) + 5


def test_e2e_exercise_fails_on_wrong_shape_with_the_shapes_in_the_message(capsys):
    lesson(5).q2.check(lambda u, vae, lat, text, a: torch.zeros(lat.shape[0], 16, 16))
    assert "shape" in capsys.readouterr().out


def test_value_exercises_do_not_reveal_the_expected_value(capsys):
    ex = lesson(2).q2
    ex.check(0.5)
    out = capsys.readouterr().out
    assert "0.5" in out and f"{float(ddim_scheduler().alphas_cumprod[1]):.4f}" not in out


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert lesson(3).q2.check(lambda p, g, m: 1 / 0) == INCORRECT
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_hints_are_graded_and_solutions_print(capsys):
    ex = lesson(2).q1
    ex._hints_shown = 0
    first, second = ex.hint(), ex.hint()
    assert first.startswith("Hint 1/") and second.startswith("Hint 2/")
    assert ex.hint(1) == first
    with pytest.raises(ValueError, match="level"):
        ex.hint(99)
    assert "def leading_timesteps" in ex.solution()


def test_lesson_rejects_unknown_numbers():
    with pytest.raises(ValueError, match="number"):
        lesson(7)
