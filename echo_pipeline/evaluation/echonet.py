"""External validation on EchoNet-Dynamic: its videos and their LVEF (FileList.csv ``EF``) as truth.

Layout (Stanford's release): ``<root>/FileList.csv`` with FileName, EF, Split (TRAIN / VAL / TEST), … and
``<root>/Videos/<FileName>.avi`` (112×112 MJPG, already cropped to the scanning sector). The model never sees
EchoNet data in training and nothing is tuned on it: the training-mean baseline uses the *internal* training
split's mean LVEF.

Videos are read with OpenCV, which returns BGR: frames are converted to RGB explicitly. Only the frames the
model uses are kept (the first 40 decoded frames hold frames 0, 2, …, 38).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from echo_pipeline.embeddings.compute import FRAME_COUNT, FRAME_STRIDE
from echo_pipeline.errors import InputContractError

FILE_LIST = "FileList.csv"
VIDEO_DIR = "Videos"
DEFAULT_SPLITS = ("TEST",)
DATASET = "echonet_dynamic"
#: Frames decoded per video: enough for frames 0, 2, …, 38.
FRAMES_NEEDED = FRAME_COUNT * FRAME_STRIDE


def read_file_list(root: str | Path, splits: Sequence[str] | None = DEFAULT_SPLITS) -> pd.DataFrame:
    """FileList rows of ``splits`` (all rows when None) with a finite EF: FileName, EF, Split, path.

    ``path`` is ``Videos/<FileName>`` with ``.avi`` appended when the name has no extension. Raises
    InputContractError naming the file when it is missing or lacks the FileName / EF columns.
    """
    path = Path(root) / FILE_LIST
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputContractError(f"{path}: cannot be read ({e}); point echonet_dynamic_root at the folder holding "
                                 "FileList.csv and Videos/") from e
    missing = [c for c in ("FileName", "EF") if c not in table.columns]
    if missing:
        raise InputContractError(f"{path}: columns {missing} missing; expected EchoNet-Dynamic's FileList.csv "
                                 f"(FileName, EF, Split, ...), found {list(table.columns)}")
    if splits is not None:
        if "Split" not in table.columns:
            raise InputContractError(f"{path}: no Split column to select {list(splits)} from; evaluate all rows "
                                     "(splits=None) or add the column")
        wanted = {s.upper() for s in splits}
        table = table[table["Split"].astype(str).str.upper().isin(wanted)]
    table = table.assign(EF=pd.to_numeric(table["EF"], errors="coerce"))
    table = table[np.isfinite(table["EF"].to_numpy(dtype=np.float64))]
    names = table["FileName"].astype(str)
    files = [n if Path(n).suffix else f"{n}.avi" for n in names]
    return pd.DataFrame({"FileName": names.to_numpy(), "EF": table["EF"].to_numpy(dtype=np.float64),
                         "Split": table["Split"].astype(str).to_numpy() if "Split" in table else "",
                         "path": [str(Path(root) / VIDEO_DIR / f) for f in files]}).sort_values(
        "FileName", kind="stable").reset_index(drop=True)


def read_video(path: str | Path, max_frames: int = FRAMES_NEEDED) -> np.ndarray:
    """The first ``max_frames`` frames of a video as uint8 (T, H, W, 3) RGB.

    Raises InputContractError naming the file when it cannot be opened or holds no frame.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputContractError(f"{path}: cannot be opened as a video; check the file exists and is an AVI")
        frames = []
        while len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise InputContractError(f"{path}: no frame could be decoded; the file is empty or corrupt")
    return np.stack(frames)


@dataclass
class VideoEmbeddings:
    """Frame embeddings (N, 20, D) (zero past ``n_frames``) of the readable videos, in ``names`` order;
    unreadable videos are in ``failed`` as (FileName, reason)."""

    names: list[str]
    frames: np.ndarray
    n_frames: np.ndarray
    failed: list[tuple[str, str]] = field(default_factory=list)


def embed_videos(files: pd.DataFrame, embed_frames: Callable[[np.ndarray], np.ndarray], *,
                 progress: Callable[[int, int], None] | None = None) -> VideoEmbeddings:
    """Embed each video of ``files`` (rows of `read_file_list`) with ``embed_frames``.

    ``embed_frames(uint8 (T, H, W, 3) RGB) -> (F, D)`` selects, resizes and encodes the frames, e.g.
    ``lambda v: ClipEmbedder(model).embed_frames(v)[0]``.
    """
    names, per_video, failed = [], [], []
    for i, (name, path) in enumerate(zip(files["FileName"], files["path"])):
        try:
            per_video.append(np.asarray(embed_frames(read_video(path)), dtype=np.float32))
            names.append(name)
        except InputContractError as e:
            failed.append((name, str(e)))
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, len(files))
    dim = per_video[0].shape[1] if per_video else 0
    frames = np.zeros((len(per_video), FRAME_COUNT, dim), dtype=np.float32)
    n_frames = np.zeros(len(per_video), dtype=np.int32)
    for row, emb in enumerate(per_video):
        frames[row, :len(emb)] = emb[:FRAME_COUNT]
        n_frames[row] = min(len(emb), FRAME_COUNT)
    return VideoEmbeddings(names, frames, n_frames, failed)
