"""Image and text embeddings from a CLIP model: frames of masked clips, clips, report texts.

Every vector returned here is L2-normalised float32. A clip is represented by the paper's frames (the first
20 at stride 2: 0, 2, …, 38; fewer when the clip is shorter) and by its clip embedding, the normalised mean of
those frame embeddings. A report may be encoded as several texts (snippets); its embedding is the normalised
mean of the snippets' normalised embeddings (`echo_pipeline.pooling`).

Speed: frames are read from memory-mapped .npy files (only the selected frames are touched), resized on the
CPU only when the model wants another size, and sent to the device as uint8 NHWC — 4× fewer bytes than float —
where the CLIP normalisation happens. Loading runs in a few threads (numpy copies and cv2.resize release the
GIL, and threads start instantly, unlike DataLoader worker processes) so it overlaps with the forward pass.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import cv2
import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from echo_pipeline.embeddings.preprocessing import check_preprocessing, published_crop
from echo_pipeline.errors import EmbeddingError
from echo_pipeline.pooling import l2_normalise, pool_texts

#: The paper's frames: the first FRAME_COUNT frames at stride FRAME_STRIDE (0, 2, …, 38).
FRAME_COUNT = 20
FRAME_STRIDE = 2

R = TypeVar("R")


def select_frame_indices(n_frames: int, count: int = FRAME_COUNT, stride: int = FRAME_STRIDE) -> np.ndarray:
    """Indices 0, stride, 2·stride, … below ``n_frames``, at most ``count`` of them (empty for an empty clip)."""
    return np.arange(0, min(n_frames, count * stride), stride, dtype=np.int64)


@dataclass(frozen=True)
class ClipItem:
    """One masked clip to embed: its id (the SOP Instance UID) and its uint8 (T, H, W, 3) .npy file."""

    clip_id: str
    path: Path


@dataclass
class ClipEmbeddings:
    """Embeddings of clips, row i belonging to ``ids[i]``.

    ``frames`` is (N, FRAME_COUNT, D) with rows past ``n_frames[i]`` left zero; ``clips`` is (N, D). Clips
    that could not be read are in ``failed`` as (clip id, reason) and nowhere else.
    """

    ids: list[str]
    frames: np.ndarray
    n_frames: np.ndarray
    clips: np.ndarray
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ReportEmbeddings:
    """Report embeddings (N, D), row i belonging to ``ids[i]``, averaged over ``n_texts[i]`` snippets.

    Reports for which ``texts_for`` gave no text are in ``failed`` as (report id, reason).
    """

    ids: list[str]
    embeddings: np.ndarray
    n_texts: np.ndarray
    failed: list[tuple[str, str]] = field(default_factory=list)


def model_fingerprint(model: torch.nn.Module) -> str:
    """``sha256:<hex>`` of the model's parameter and buffer names, shapes, dtypes and values.

    A model id for the embedding store when no checkpoint sha256 is at hand: equal weights give equal ids.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"sha256:{h.hexdigest()}"


def model_image_size(model: torch.nn.Module) -> int:
    """Square input size the model's image tower expects (from its preprocess config or the tower)."""
    size = open_clip.get_model_preprocess_cfg(model).get("size") or getattr(model.visual, "image_size", None)
    if size is None:
        raise EmbeddingError("the model does not say its image size; pass image_size explicitly")
    if isinstance(size, (tuple, list)):
        if size[0] != size[-1]:
            raise EmbeddingError(f"non-square model input {tuple(size)} is not supported; masked clips are square")
        size = size[0]
    return int(size)


def load_clip_frames(path: Path, image_size: int, count: int = FRAME_COUNT, stride: int = FRAME_STRIDE,
                     preprocessing: str = "model") -> np.ndarray:
    """The selected frames of a masked clip as uint8 (F, image_size, image_size, 3), resized when needed
    (or cropped the published way: `preprocessing.published_crop`).

    The file is memory-mapped so only the selected frames are read. Shrinking uses INTER_AREA (no aliasing),
    enlarging INTER_CUBIC. Raises EmbeddingError naming the file when it is not a non-empty uint8 RGB clip.
    """
    try:
        clip = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise EmbeddingError(f"{path}: masked clip unreadable ({e}); rerun the masking stage for it") from e
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise EmbeddingError(f"{path}: expected uint8 (T, H, W, 3) RGB frames, found {clip.dtype} {clip.shape}")
    if min(clip.shape[:3]) == 0:
        raise EmbeddingError(f"{path}: clip is empty (shape {clip.shape})")
    frames = np.ascontiguousarray(clip[select_frame_indices(clip.shape[0], count, stride)])
    return resize_frames(frames, image_size, preprocessing)


def resize_frames(frames: np.ndarray, image_size: int, preprocessing: str = "model") -> np.ndarray:
    """uint8 (F, H, W, 3) frames resized to (F, image_size, image_size, 3); returned as is when already so.
    ``preprocessing="published_crop"`` crops first (`embeddings.preprocessing`)."""
    if check_preprocessing(preprocessing) == "published_crop":
        return published_crop(frames, image_size)
    if frames.shape[1:3] == (image_size, image_size):
        return frames
    shrinking = frames.shape[1] * frames.shape[2] >= image_size * image_size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = np.empty((len(frames), image_size, image_size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (image_size, image_size), interpolation=interpolation)
    return out


class ClipEmbedder:
    """Embeds masked clips with one model, in fixed-size frame batches under ``torch.inference_mode``.

    ``batch_frames`` frames go through the model at once, whatever clip they come from; ``num_workers``
    threads read clips ahead (0 = read in the calling thread). On CUDA the input is channels_last and two
    pinned host buffers alternate, so filling one overlaps the transfer of the other. ``preprocessing`` names
    the frame preparation before normalisation (`embeddings.preprocessing`).
    """

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu", image_size: int | None = None,
                 batch_frames: int = 64, num_workers: int = 1, frame_count: int = FRAME_COUNT,
                 frame_stride: int = FRAME_STRIDE, amp_dtype: torch.dtype | None = None,
                 preprocessing: str = "model") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.image_size = image_size or model_image_size(model)
        self.batch_frames = int(batch_frames)
        self.num_workers = int(num_workers)
        self.frame_count = int(frame_count)
        self.frame_stride = int(frame_stride)
        self.amp_dtype = amp_dtype
        self.preprocessing = check_preprocessing(preprocessing)
        cfg = open_clip.get_model_preprocess_cfg(model)
        mean = cfg.get("mean") or open_clip.constants.OPENAI_DATASET_MEAN
        std = cfg.get("std") or open_clip.constants.OPENAI_DATASET_STD
        # uint8 → (x/255 - mean)/std folded into one affine map: x·scale + shift.
        self._scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32))).view(1, 3, 1, 1).to(self.device)
        self._shift = (-torch.tensor(mean, dtype=torch.float32) / torch.tensor(std)).view(1, 3, 1, 1).to(self.device)
        self._cuda = self.device.type == "cuda"
        shape = (self.batch_frames, self.image_size, self.image_size, 3)
        # Two buffers so one can be filled while the other is in flight (on CPU the forward is synchronous and
        # the alternation is harmless).
        self._buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=self._cuda) for _ in range(2)]
        self._copied = [None] * len(self._buffers)  # CUDA event per buffer: its last transfer finished

    def preprocess(self, frames_u8: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC frames (on the device) → normalised float32 NCHW (channels_last on CUDA)."""
        x = frames_u8.permute(0, 3, 1, 2).float()  # keeps NHWC memory order: channels_last for free
        x = x * self._scale + self._shift
        return x if self._cuda else x.contiguous()

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised float32 embeddings (F, D), on the device, of uint8 (F, S, S, 3) frames of the model size."""
        frames = torch.as_tensor(frames).to(self.device, non_blocking=True)
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            return F.normalize(self.model.encode_image(self.preprocess(frames)).float(), dim=-1)

    def embed_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frame embeddings (F, D), clip embedding (D,)) of an in-memory uint8 (T, H, W, 3) clip.

        The same frame selection and resizing as stored clips, for queries from a file ingested on the fly.
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise EmbeddingError(f"expected non-empty uint8 (T, H, W, 3) RGB frames, got {frames.dtype} {frames.shape}")
        picked = resize_frames(np.ascontiguousarray(frames[select_frame_indices(len(frames), self.frame_count,
                                                                                self.frame_stride)]), self.image_size,
                              self.preprocessing)
        per_frame = np.concatenate([self.encode(picked[i:i + self.batch_frames]).cpu().numpy()
                                    for i in range(0, len(picked), self.batch_frames)])
        return per_frame, l2_normalise(per_frame.mean(axis=0))

    def _load(self, item: ClipItem) -> np.ndarray | str:
        try:
            return load_clip_frames(Path(item.path), self.image_size, self.frame_count, self.frame_stride,
                                    self.preprocessing)
        except EmbeddingError as e:
            return str(e)

    def _loaded(self, items: Sequence[ClipItem]) -> Iterator[np.ndarray | str]:
        """Frames (or a failure reason) per item, in order, read ``num_workers`` threads ahead."""
        if self.num_workers <= 0:
            yield from (self._load(item) for item in items)
            return
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="clip-loader") as pool:
            ahead = 4 * self.num_workers + 2
            queue = deque(pool.submit(self._load, item) for item in items[:ahead])
            for item in items[ahead:]:
                yield queue.popleft().result()
                queue.append(pool.submit(self._load, item))
            while queue:
                yield queue.popleft().result()

    def _flush(self, slot: int, fill: int, rows: np.ndarray, pos: np.ndarray, pending: list) -> None:
        host = self._buffers[slot][:fill]
        if self._cuda:
            device_frames = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._copied[slot] = event
            pending.append((self.encode(device_frames), rows[:fill].copy(), pos[:fill].copy()))
        else:
            pending.append((self.encode(host), rows[:fill].copy(), pos[:fill].copy()))

    def embed_clips(self, items: Sequence[ClipItem]) -> ClipEmbeddings:
        """Embed ``items`` (see ClipEmbeddings); unreadable clips are reported in ``failed``, never raised."""
        items = list(items)
        n_frames = np.zeros(len(items), dtype=np.int32)
        failed: list[tuple[str, str]] = []
        pending: list[tuple[torch.Tensor, np.ndarray, np.ndarray]] = []  # device outputs, copied back at the end
        rows = np.empty(self.batch_frames, dtype=np.int64)
        pos = np.empty(self.batch_frames, dtype=np.int64)
        slot, fill = 0, 0
        for row, frames in enumerate(self._loaded(items)):
            if isinstance(frames, str):
                failed.append((items[row].clip_id, frames))
                continue
            n_frames[row] = len(frames)
            start = 0
            while start < len(frames):
                if fill == 0 and self._copied[slot] is not None:
                    self._copied[slot].synchronize()  # the previous transfer from this buffer is done
                take = min(len(frames) - start, self.batch_frames - fill)
                self._buffers[slot][fill:fill + take].numpy()[:] = frames[start:start + take]
                rows[fill:fill + take] = row
                pos[fill:fill + take] = np.arange(start, start + take)
                fill, start = fill + take, start + take
                if fill == self.batch_frames:
                    self._flush(slot, fill, rows, pos, pending)
                    slot, fill = (slot + 1) % len(self._buffers), 0
        if fill:
            self._flush(slot, fill, rows, pos, pending)
        return self._assemble(items, n_frames, failed, pending)

    def _assemble(self, items: Sequence[ClipItem], n_frames: np.ndarray, failed: list[tuple[str, str]],
                  pending: list[tuple[torch.Tensor, np.ndarray, np.ndarray]]) -> ClipEmbeddings:
        dim = pending[0][0].shape[1] if pending else 0
        frames = np.zeros((len(items), self.frame_count, dim), dtype=np.float32)
        for out, rows, pos in pending:
            frames[rows, pos] = out.cpu().numpy()
        ok = n_frames > 0
        sums = frames[ok].sum(axis=1)  # padding rows are zero, so the sum is over real frames only
        clips = l2_normalise(sums / n_frames[ok, None]) if ok.any() else np.zeros((0, dim), np.float32)
        return ClipEmbeddings(ids=[it.clip_id for it, good in zip(items, ok) if good], frames=frames[ok],
                              n_frames=n_frames[ok], clips=clips, failed=failed)


def embed_texts(model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str], *,
                device: str | torch.device = "cpu", batch_size: int = 256,
                context_length: int | None = None) -> np.ndarray:
    """Normalised float32 (N, D) text embeddings; ``tokenizer(list[str], context_length=...)`` → LongTensor."""
    device = torch.device(device)
    model = model.to(device).eval()
    context_length = context_length or getattr(model, "context_length", 77)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[i:i + batch_size]), context_length=context_length).to(device)
            out.append(F.normalize(model.encode_text(tokens).float(), dim=-1).cpu().numpy())
    if not out:
        raise EmbeddingError("no texts to embed")
    return np.concatenate(out)


def embed_reports(model: torch.nn.Module, tokenizer: Callable, reports: Iterable[tuple[str, R]],
                  texts_for: Callable[[R], list[str]], *, device: str | torch.device = "cpu",
                  batch_size: int = 256, context_length: int | None = None) -> ReportEmbeddings:
    """Embed each (report id, report) as the normalised mean of its snippets' normalised embeddings
    (`echo_pipeline.pooling.pool_texts`).

    ``texts_for(report)`` gives the report's texts (one whole report for a template tokenizer, several
    snippets for BPE). A report with no non-empty text goes to ``failed``.
    """
    ids, counts, texts, failed = [], [], [], []
    for report_id, report in reports:
        snippets = [t for t in texts_for(report) if t and t.strip()]
        if not snippets:
            failed.append((report_id, "no text to embed"))
            continue
        ids.append(report_id)
        counts.append(len(snippets))
        texts.extend(snippets)
    if not ids:
        return ReportEmbeddings(ids=[], embeddings=np.zeros((0, 0), np.float32), n_texts=np.zeros(0, np.int32),
                                failed=failed)
    per_text = embed_texts(model, tokenizer, texts, device=device, batch_size=batch_size,
                           context_length=context_length)
    n_texts = np.asarray(counts, dtype=np.int32)
    return ReportEmbeddings(ids=ids, embeddings=pool_texts(per_text, n_texts), n_texts=n_texts, failed=failed)
