"""Lesson 09 exercises: the depth-edge mask, on which the latent and decoded losses differ."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import rng_arrays

__all__ = ["q1"]


def _edge_mask_reference(depth, mask, ratio):
    from scipy.ndimage import maximum_filter, minimum_filter

    near = minimum_filter(np.where(mask, depth, np.inf), size=(1, 3, 3))
    far = maximum_filter(np.where(mask, depth, 0.0), size=(1, 3, 3))
    return mask & (far / near > ratio)


def _edge_cases():
    (depth,) = rng_arrays(19, (2, 8, 8), low=2.0, high=2.1)
    depth[:, 2:5, 3:6] = 1.0  # a box in front of a gently uneven wall
    mask = np.ones((2, 8, 8), bool)
    mask[1, :, 0] = False  # an invalid column next to valid pixels: it must not count as an edge
    depth[1, :, 0] = 50.0
    return [((depth, mask, 1.1), "2 depth maps [2,8,8] with a box 1 m in front of a wall, ratio 1.1"),
            ((depth, mask, 3.0), "the same maps, ratio 3 (no edge is that steep)")]


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the depth-edge mask of section 2",
    hints=["An edge pixel is a valid pixel whose 3×3 neighbourhood (itself included, valid pixels only) spans a depth "
           "ratio max/min above `ratio`.",
           "scipy.ndimage.minimum_filter and maximum_filter with size=(1, 3, 3) work on each map of the batch; give the "
           "invalid pixels a value that cannot win (inf for the minimum, 0 for the maximum).",
           "Return `mask & (far / near > ratio)`: a bool array [N,H,W]."],
    solution_code="""
        def edge_mask(depth, mask, ratio):
            from scipy.ndimage import maximum_filter, minimum_filter
            near = minimum_filter(np.where(mask, depth, np.inf), size=(1, 3, 3))
            far = maximum_filter(np.where(mask, depth, 0.0), size=(1, 3, 3))
            return mask & (far / near > ratio)
    """,
    reference=_edge_mask_reference, cases=_edge_cases)
