"""Training data: (masked clip, report) pairs → batches of one frame and one text snippet per clip.

Inputs follow the masked-clip contract: one `.npy` per clip, uint8 (T, H, W, 3) RGB, read with
mmap so a random frame costs one frame's bytes. Workers return uint8 frames (4× less to move than
float); normalisation happens on the batch, on the training device (`normalize_images`).

Randomness is a pure function of (seed, epoch, clip index) — never of worker ids or global RNG — so a
resumed run draws exactly the frames and snippets the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
import torchvision.transforms.v2.functional as TF
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from echo_pipeline.errors import InputContractError
from echo_pipeline.tokenizers.protocol import EvaluationTexts, TextPolicy

#: `tokenizer(texts, context_length=77) -> LongTensor (N, context_length)` (open_clip's signature).
Tokenizer = Callable[..., torch.Tensor]
#: `text_sampler(report, epoch, rng) -> str`; rng None asks for the fixed evaluation text.
TextSampler = Callable[[str, int, "np.random.Generator | None"], str]


@dataclass(frozen=True)
class TrainPair:
    """One training example: a masked clip and the text of its study's report."""

    clip_id: str
    npy_path: str
    #: The whole report, or report snippets already cut to fit the context (one is drawn per epoch).
    text: str | tuple[str, ...]
    #: Patient or study id (pseudonymised); recorded in the data fingerprint.
    group_id: str


def as_pairs(rows: Sequence) -> list[TrainPair]:
    """Accept TrainPairs or (clip_id, npy_path, text_or_snippets, group_id) tuples."""
    out = []
    for r in rows:
        if isinstance(r, TrainPair):
            out.append(r)
        else:
            clip_id, path, text, group = r
            text = text if isinstance(text, str) else tuple(text)
            out.append(TrainPair(str(clip_id), str(path), text, str(group)))
    return out


def pairs_fingerprint(pairs: Sequence[TrainPair]) -> str:
    """sha256 over the pairs' ids, paths, groups and texts (order-independent); identifies a data set.

    Texts enter as their own digests, so a million full reports never sit in memory as one sort key.
    """
    def text_digest(text) -> str:
        joined = text if isinstance(text, str) else "\x1e".join(text)
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()

    lines = sorted("\x1f".join([p.clip_id, p.npy_path, p.group_id, text_digest(p.text)]) for p in pairs)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def whole_report(report: str, epoch: int, rng: np.random.Generator | None) -> str:
    """Text sampler for tokenizers whose reports fit the context whole (template tokenizer)."""
    return report


class PolicyTextSampler:
    """Text sampler backed by a project tokenizer's text policy (echo_pipeline.tokenizers): for BPE a
    random set of the report's sentences fitting 75 tokens; for the template tokenizer each sentence kept
    with probability 0.5.

    The draw comes from the dataset's generator of (seed, epoch, clip), so the clips of one study train on
    different snippets in the same epoch: with one snippet per study, two of its clips in a batch would
    carry identical texts, each the other's negative with the same target (measured in docs/training.md).
    """

    def __init__(self, policy: TextPolicy):
        self.policy = policy

    def __call__(self, report: str, epoch: int, rng: np.random.Generator | None) -> str:
        if rng is None:
            return self.policy.evaluation_texts(report)[0]
        return self.policy.training_text(report, rng)

    def evaluation_texts(self, report: str) -> list[str]:
        """All texts that represent the report at evaluation (every BPE window)."""
        return list(self.policy.evaluation_texts(report))


def default_text_sampler(tokenizer, tokenizer_kind: str, context_length: int) -> TextSampler:
    """The tokenizer's own policy when it has one (a `tokenizers.protocol.TextPolicy`, as every project
    tokenizer is); else, for any other BPE tokenizer (e.g. open_clip's), the project's BPE policy; else
    whole reports."""
    if isinstance(tokenizer, TextPolicy):
        return PolicyTextSampler(tokenizer)
    if tokenizer_kind == "bpe":
        from echo_pipeline.tokenizers import make_tokenizer
        return PolicyTextSampler(make_tokenizer("bpe", context_length=context_length))
    return whole_report


def evaluation_texts(text: str | tuple[str, ...], sampler: TextSampler) -> list[str]:
    """The texts whose mean embedding represents a report at validation.

    Snippet tuples: all snippets. Whole reports: the sampler's `evaluation_texts` when it has them (an
    `EvaluationTexts`, as `PolicyTextSampler` is: all BPE windows, so validation sees the whole report),
    else its fixed evaluation text.
    """
    if not isinstance(text, str):
        return list(text) or [""]
    if isinstance(sampler, EvaluationTexts):
        return sampler.evaluation_texts(text) or [""]
    return [sampler(text, 0, None)]


class ClipFrameDataset(Dataset):
    """Items are `(index, epoch)` → (uint8 image (3, S, S), tokens (context_length,)).

    Training draws the frame and text from `default_rng([seed, epoch, index])`; evaluation uses the
    middle frame and the sampler's fixed evaluation text. Paths and texts are held in Arrow arrays,
    not Python objects: forked DataLoader workers then share them instead of copying every page that
    a reference count touches (a million reports would otherwise be copied once per worker).
    """

    def __init__(self, pairs: Sequence[TrainPair], tokenizer: Tokenizer, text_sampler: TextSampler, *,
                 image_size: int, context_length: int, seed: int, train: bool):
        self._paths = pa.array([p.npy_path for p in pairs], pa.string())
        self._texts = pa.array([[p.text] if isinstance(p.text, str) else list(p.text) for p in pairs],
                               pa.list_(pa.string()))
        self._whole = np.array([isinstance(p.text, str) for p in pairs], dtype=bool)
        self.tokenizer = tokenizer
        self.text_sampler = text_sampler
        self.image_size = image_size
        self.context_length = context_length
        self.seed = seed
        self.train = train

    def __len__(self) -> int:
        return len(self._paths)

    def _text(self, index: int, epoch: int, rng: np.random.Generator | None) -> str:
        texts = self._texts[index].as_py()
        if self._whole[index]:
            return self.text_sampler(texts[0], epoch, rng)
        if not texts:
            return ""
        return texts[0] if rng is None else texts[int(rng.integers(len(texts)))]

    def __getitem__(self, item: tuple[int, int] | int):
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train else None
        frame = read_frame(self._paths[index].as_py(), rng)
        image = torch.from_numpy(frame).permute(2, 0, 1)
        if image.shape[1:] != (self.image_size, self.image_size):
            image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        tokens = self.tokenizer([self._text(index, epoch, rng)], context_length=self.context_length)[0]
        return image.contiguous(), tokens


def read_frame(npy_path: str, rng: np.random.Generator | None) -> np.ndarray:
    """One frame (H, W, 3) uint8 of a clip file: random when `rng` is given, else the middle frame."""
    try:
        clip = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise InputContractError(f"{npy_path}: masked clip unreadable ({e}); re-run the masking stage") from e
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8 or clip.shape[0] == 0:
        raise InputContractError(
            f"{npy_path}: expected a uint8 (T, H, W, 3) clip, found {clip.dtype} {clip.shape}; "
            "re-run the masking stage")
    t = clip.shape[0] // 2 if rng is None else int(rng.integers(clip.shape[0]))
    return np.array(clip[t])  # a private, writable copy; the memmap stays read-only


class EpochTaggedSampler(Sampler):
    """Wraps a DistributedSampler and tags each index with the epoch, so workers need no epoch state."""

    def __init__(self, inner: DistributedSampler):
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self):
        return ((int(i), self.epoch) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def _worker_init(_worker_id: int) -> None:
    # Workers only read, resize and tokenise; one thread each keeps them from fighting the main
    # process's intra-op threads for the same cores.
    torch.set_num_threads(1)


def make_loader(dataset: ClipFrameDataset, *, batch_size: int, num_workers: int, rank: int, world_size: int,
                shuffle: bool, drop_last: bool, seed: int, pin_memory: bool = False) -> DataLoader:
    """DataLoader over `dataset` sharded across ranks; iterate after `loader.sampler.set_epoch(e)`."""
    inner = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                               drop_last=drop_last)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=EpochTaggedSampler(inner), num_workers=num_workers,
        drop_last=drop_last, worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=num_workers > 0, pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        # Own generator: worker seeding must not consume the global RNG that a checkpoint restores.
        generator=torch.Generator().manual_seed(seed),
    )


def normalize_images(images: torch.Tensor, device: torch.device, *, channels_last: bool = False,
                     mean: Sequence[float] = OPENAI_DATASET_MEAN, std: Sequence[float] = OPENAI_DATASET_STD
                     ) -> torch.Tensor:
    """uint8 (N, 3, H, W) → float32 normalised on `device` (moved as uint8 first: 4× fewer bytes) with the
    model's mean/std (its `preprocess_cfg`, as embedding uses; CLIP's OpenAI values by default)."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=device).view(1, 3, 1, 1)
    x = x.sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
