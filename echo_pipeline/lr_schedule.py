"""Learning-rate schedule: linear warm-up, then cosine decay to zero.

A pure function of the step, so resuming only needs the step count (no scheduler object to pickle). The one
copy of the rule: CLIP training (`training.trainer`) and the view classifier (`views.train`, as a LambdaLR
factor with base_lr 1) both use it, which is why it sits below both packages.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based).

    Steps 0..warmup_steps-1 rise linearly to `base_lr` (reached on the last warm-up step); the rest
    follow a half cosine from `base_lr` down to 0 at `total_steps`. Never negative.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def warmup_length(total_steps: int, warmup_steps: int | None, warmup_fraction: float) -> int:
    """Warm-up steps for a run of `total_steps`: the fixed count if given, else a fraction (>= 1 step).

    Capped at half the run, so a short run still decays (the paper's 2,000 steps would otherwise
    swallow a small test run whole).
    """
    wanted = warmup_steps if warmup_steps is not None else round(warmup_fraction * total_steps)
    return max(1, min(wanted, total_steps // 2))
