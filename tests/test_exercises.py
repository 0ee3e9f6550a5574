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

QUESTIONS = [(n, q) for n in range(1, 10) for q in lesson(n).__all__]


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


def _epsilon_step(eps, t, x_t, n, a, one, prev_t=None, final=None, v_formula=False):
    prev_t = t - 1000 // n if prev_t is None else prev_t
    a_t = a[t]
    a_prev = a[prev_t] if prev_t >= 0 else (final if final is not None else 1.0 if one else a[0])
    x0 = a_t ** 0.5 * x_t - (1 - a_t) ** 0.5 * eps if v_formula else (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
    return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps, x0


def _step_to_the_next_timestep(eps, t, x_t, n, a, one):  # the schedule's next t instead of diffusers' t − T // n
    ts = [int(s) for s in np.round(np.arange(1000, 0, -1000 / n)).astype(int) - 1]
    later = [s for s in ts if s < t]
    return _epsilon_step(eps, t, x_t, n, a, one, prev_t=later[0] if later else -1)


def _final_alpha_always_alpha0(eps, t, x_t, n, a, one):  # ignores set_alpha_to_one
    return _epsilon_step(eps, t, x_t, n, a, one, final=a[0])


def _epsilon_step_with_the_v_formula(eps, t, x_t, n, a, one):
    return _epsilon_step(eps, t, x_t, n, a, one, v_formula=True)


def test_tuple_answers_may_come_as_lists(capsys):
    def as_list(eps, t, x_t, n, a, one):
        return list(_epsilon_step(eps, t, x_t, n, a, one))

    assert lesson(2).q3.check(as_list) == CORRECT


def _cost(scales, d, lam=0.02, reduce=np.median, pair=lambda a, b: np.sqrt(np.mean((a - b) ** 2))):
    aligned = d * np.asarray(scales)[:, None, None, None]
    cost = sum(pair(aligned[i], aligned[j]) for i in range(len(d)) for j in range(i + 1, len(d)))
    m = reduce(aligned, axis=0)
    return float(cost + lam * (abs(m.min()) + abs(1 - m.max())))


def _cost_with_mean(scales, d):  # the mean of the members instead of their median
    return _cost(scales, d, reduce=np.mean)


def _cost_without_regulariser(scales, d):
    return _cost(scales, d, lam=0.0)


def _cost_of_squared_errors(scales, d):  # MSE per pair instead of RMSE
    return _cost(scales, d, pair=lambda a, b: np.mean((a - b) ** 2))


def _rescale_shift_only(betas):  # forgot to scale √ᾱ back: ᾱ₀ changes
    root = torch.cumprod(1 - betas, 0).sqrt()
    root = root - root[-1].clone()
    a_bar = root ** 2
    return 1 - torch.cat([a_bar[:1], a_bar[1:] / a_bar[:-1]])


def _encoded(d, vae):
    with torch.no_grad():
        return vae.encode(d[:, None].repeat(1, 3, 1, 1)).latent_dist.mean * vae.config.scaling_factor


def _e2e(unet, vae, lat, text, a):
    z = torch.zeros_like(lat)
    v = unet(torch.cat([lat, z], 1), 999, encoder_hidden_states=text.expand(len(z), -1, -1)).sample
    return vae.decode(-((1 - a) ** 0.5) * v / vae.config.scaling_factor).sample.mean(1).clamp(-1, 1)


def _e2e_under_no_grad(*args):  # right values, but the graph is gone (E2E-FT issue #21)
    with torch.no_grad():
        return _e2e(*args)


def _e2e_detached(*args):
    return _e2e(*args).detach()


def _widen(conv, weight, bias):
    wide = torch.nn.Conv2d(8, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        wide.weight.copy_(weight)
        wide.bias.copy_(bias)
    return wide


def _widen_without_halving(conv):
    return _widen(conv, conv.weight.repeat(1, 2, 1, 1), conv.bias)


def _widen_with_zeros(conv):  # the old weights on the RGB half, zeros on the target half: not what Marigold does
    return _widen(conv, torch.cat([conv.weight, torch.zeros_like(conv.weight)], 1), conv.bias)


def _widen_in_place(conv):  # halves the original layer's weights as a side effect
    with torch.no_grad():
        conv.weight.mul_(0.5)
    return _widen(conv, conv.weight.repeat(1, 2, 1, 1), conv.bias)


def _disparity_fit(p, d, m):
    a = np.stack([p[m], np.ones(int(m.sum()))], 1)
    s, t = np.linalg.lstsq(a, 1 / d[m], rcond=None)[0]
    return 1 / np.maximum(s * p[m] + t, 1e-6)


def _disparity_pooled(pred, depth, mask):  # every pixel of every image in one average
    errors = [np.abs(_disparity_fit(p, d, m) - d[m]) / d[m] for p, d, m in zip(pred, depth, mask)]
    return float(np.concatenate(errors).mean())


def _disparity_in_depth_space(pred, depth, mask):  # fits the disparity map to depth: the wrong space
    scores = []
    for p, d, m in zip(pred, depth, mask):
        a = np.stack([p[m], np.ones(int(m.sum()))], 1)
        s, t = np.linalg.lstsq(a, d[m], rcond=None)[0]
        scores.append(np.mean(np.abs(s * p[m] + t - d[m]) / d[m]))
    return float(np.mean(scores))


def _edges_counting_invalid(depth, mask, ratio):
    from scipy.ndimage import maximum_filter, minimum_filter

    return mask & (maximum_filter(depth, size=(1, 3, 3)) / minimum_filter(depth, size=(1, 3, 3)) > ratio)


BAD = {
    (1, "q1"): [lambda vae, x: vae.encode(x).latent_dist.mode(),  # forgot the scaling factor
                lambda vae, x: vae.encode(x).latent_dist.sample() * vae.config.scaling_factor],
    (1, "q2"): [lambda im: im.mean(1), lambda im: (im.mean(1) + 1) / 2, lambda im: (im[:, 0].clamp(-1, 1) + 1) / 2],
    (2, "q1"): [_off_by_one_leading, lambda n: list(range(n))],
    (2, "q2"): [0.5, float(ddim_scheduler().alphas_cumprod[999])],
    (2, "q3"): [_step_to_the_next_timestep, _final_alpha_always_alpha0, _epsilon_step_with_the_v_formula,
                lambda e, t, x, n, a, one: _epsilon_step(e, t, x, n, a, one)[1]],  # x̂₀ only
    (3, "q1"): [_trailing_wrong, lambda n: [999] * n,
                lambda n: [999 - i * (1000 // n) for i in range(n)]],  # integer stride: right unless n ∤ 1000
    (3, "q2"): [_delta1_pooled, lambda p, g, m: 0.5],
    (4, "q1"): [lambda z, v, a: a ** 0.5 * z - (1 - a) ** 0.5 * v,  # x̂₀, not ε̂
                lambda z, v, a: a ** 0.5 * z + (1 - a) ** 0.5 * v,  # the coefficients swapped
                lambda z, v, a: v],
    (4, "q2"): [float(ddim_scheduler().alphas_cumprod[999]), 1.0],
    (4, "q3"): [5.0, 3.5, 2.0],  # the likelier depth, the midpoint, the nearer one
    (5, "q1"): [lambda p, g, m: (1.0, 0.0), lambda p, g, m: tuple(np.polyfit(p.ravel(), g.ravel(), 1))],
    (3, "q3"): [lambda b: b.clone(), _rescale_shift_only],
    (3, "q4"): [_cost_with_mean, _cost_without_regulariser, _cost_of_squared_errors],
    (5, "q3"): [lambda x0, d, vae: ((x0 - vae.encode(d[:, None].repeat(1, 3, 1, 1)).latent_dist.mean) ** 2).mean(),
                lambda x0, d, vae: ((x0.detach() - _encoded(d, vae)) ** 2).mean(),  # cut from x̂₀
                lambda x0, d, vae: (x0 - _encoded(d, vae)).abs().mean()],  # L1, not MSE
    (5, "q2"): [lambda u, vae, lat, text, a: torch.zeros(lat.shape[0], 16, 16), _e2e_under_no_grad, _e2e_detached],
    (6, "q1"): [lambda p, g, m: torch.arccos((p * g).sum(1).clamp(-1, 1)).mean(),  # ignores the mask
                lambda p, g, m: (1 - (p * g).sum(1))[m].mean(),
                lambda p, g, m: torch.arccos((torch.nn.functional.normalize(p, dim=1) * g).sum(1))[m].mean(),  # no clamp
                lambda p, g, m: torch.arccos((p * g).sum(1).clamp(-1 + 1e-6, 1 - 1e-6))[m].mean()],  # not normalised
    (6, "q2"): [lambda p, g, m: float(np.mean([np.degrees(np.arccos(np.clip((a[k] * b[k]).sum(-1), -1, 1))).mean()
                                               for a, b, k in zip(p, g, m)])),  # per image, not pooled
                lambda p, g, m: float(np.degrees(np.arccos(np.clip((p[m] * g[m]).sum(1), -1, 1))).mean())],  # no norm.
    (7, "q1"): [_widen_without_halving, _widen_with_zeros, _widen_in_place],
    (8, "q1"): [_disparity_pooled, _disparity_in_depth_space],
    (9, "q1"): [lambda d, m, r: m.copy(),  # every valid pixel
                lambda d, m, r: m & (np.abs(np.gradient(d, axis=2)) > r - 1),  # a horizontal difference, not a ratio
                _edges_counting_invalid],
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
    for number in (0, 10, True, "3"):
        with pytest.raises(ValueError, match="number"):
            lesson(number)
