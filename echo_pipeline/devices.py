"""Which torch device a step runs on: the one rule for training, embedding, evaluation and search.

"auto" means the GPU when one is visible, else the CPU, so the same run config works on a laptop and on a
GPU node. Any other name ("cpu", "cuda", "cuda:1", "mps") is taken as asked and left for torch to refuse.
"""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> str:
    """"auto" → "cuda" when a GPU is visible, else "cpu"; other names unchanged."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
