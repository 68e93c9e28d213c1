"""Device selection: one rule ("auto" = the GPU when visible, else the CPU) for every step that runs a model."""

from __future__ import annotations

import torch

from echo_pipeline.devices import resolve_device
from echo_pipeline.training.ddp import pick_device


def test_auto_picks_the_gpu_only_when_one_is_visible_and_other_names_pass_through():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert [resolve_device(n) for n in ("cpu", "cuda", "cuda:1", "mps")] == ["cpu", "cuda", "cuda:1", "mps"]


def test_a_training_rank_follows_the_same_rule_on_its_own_gpu():
    assert pick_device("cpu", local_rank=3) == torch.device("cpu")
    assert pick_device("cuda", local_rank=3) == torch.device("cuda", 3)
    expected = torch.device("cuda", 1) if torch.cuda.is_available() else torch.device("cpu")
    assert pick_device("auto", local_rank=1) == expected
