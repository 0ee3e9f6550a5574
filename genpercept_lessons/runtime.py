"""Seeds and devices, set explicitly (never at import) and reported."""
from __future__ import annotations

import random

__all__ = ["set_seed", "step_generator", "pick_device"]


def set_seed(seed: int = 0, verbose: bool = True) -> int:
    """Seed Python, numpy and torch (CPU and CUDA) with ``seed``; print what was done. Introduced in notebook 00."""
    import numpy as np
    import torch

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"set_seed: `seed` must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if verbose:
        print(f"seeded python, numpy and torch with {seed}")
    return seed


def step_generator(seed: int, rank: int, step: int):
    """A torch generator that depends only on (seed, rank, step): reproducible sampling; resuming needs no RNG state."""
    import numpy as np
    import torch

    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))


def pick_device(preferred: str | None = None, verbose: bool = True) -> str:
    """``preferred`` if usable, else "cuda" when a GPU is visible, else "cpu"; print the choice. Introduced in notebook 00."""
    import torch

    if preferred is not None:
        if not isinstance(preferred, str) or preferred.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"pick_device: `preferred` must be 'cpu', 'cuda[:N]' or 'mps', got {preferred!r}")
        if preferred.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("pick_device: 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu' "
                               "(the mini profile runs there) or install a CUDA build of torch")
        device = preferred
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if verbose:
        print(f"device: {device}")
    return device
