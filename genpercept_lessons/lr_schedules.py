"""Marigold's ``IterExponential`` learning-rate schedule: linear warm-up, then exponential decay to a final ratio."""
from __future__ import annotations

__all__ = ["iter_exponential"]


def iter_exponential(step: int, total_steps: int, warmup_steps: int = 100, final_ratio: float = 0.01) -> float:
    """LR multiplier at ``step``: ramps 0→1 over ``warmup_steps``, then decays as final_ratio^(progress) to ``final_ratio`` at ``total_steps``.

    (Marigold/E2E-FT: 100 warm-up steps, decay to 1% at 20k iterations; E2E-FT ``training/train.py``.) Introduced in notebook 05.
    """
    if total_steps <= 0 or warmup_steps < 0 or warmup_steps >= total_steps:
        raise ValueError(f"iter_exponential: need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                         f"total_steps={total_steps}")
    if not 0 < final_ratio <= 1:
        raise ValueError(f"iter_exponential: `final_ratio` must be in (0, 1], got {final_ratio}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return final_ratio ** progress
