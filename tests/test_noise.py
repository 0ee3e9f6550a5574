"""Annealed multi-resolution noise (Marigold's training noise): shape, unit std, more low frequencies at high strength, errors."""
from __future__ import annotations

import pytest
import torch

from genpercept_lessons.training_noise import multi_resolution_noise


def _low_frequency_share(noise: torch.Tensor) -> float:
    """Variance of the per-channel spatial means over the total variance (white noise: ~1/(h*w))."""
    return float(noise.mean(dim=(2, 3)).var() / noise.var())


def test_shape_unit_std_and_determinism():
    a = multi_resolution_noise((8, 4, 16, 16), 0.9, generator=torch.Generator().manual_seed(0))
    b = multi_resolution_noise((8, 4, 16, 16), 0.9, generator=torch.Generator().manual_seed(0))
    assert a.shape == (8, 4, 16, 16) and torch.equal(a, b)
    assert a.std().item() == pytest.approx(1.0, abs=1e-5)


def test_strength_moves_energy_to_low_frequencies():
    g = torch.Generator().manual_seed(0)
    white = multi_resolution_noise((256, 4, 16, 16), 0.0, generator=g)
    pyramid = multi_resolution_noise((256, 4, 16, 16), 0.9, generator=g)
    assert _low_frequency_share(white) < 0.02  # ~1/256 for independent pixels
    assert _low_frequency_share(pyramid) > 10 * _low_frequency_share(white)


def test_annealing_is_per_sample():
    g = torch.Generator().manual_seed(0)
    strength = torch.cat([torch.zeros(128), torch.full((128,), 0.9)])  # t = 0 vs t = T under annealing
    noise = multi_resolution_noise((256, 4, 16, 16), strength, generator=g)
    assert _low_frequency_share(noise[128:]) > 10 * _low_frequency_share(noise[:128])


@pytest.mark.parametrize("shape, strength, match", [
    ((4, 16, 16), 0.9, "shape"),
    ((2, 4, 0, 16), 0.9, "shape"),
    ((2, 4, 16, 16), 1.5, "strength"),
    ((2, 4, 16, 16), torch.ones(3) * 0.5, "strength"),
])
def test_bad_input(shape, strength, match):
    with pytest.raises(ValueError, match=match):
        multi_resolution_noise(shape, strength)
