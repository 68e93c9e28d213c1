"""PromptCAM on real clips: `prompt_saliency` (per variant) and `explain` (one clip or DICOM file, one prompt).

`prompt_saliency`: for each device and chamber task of the prompts file, the test clips whose embedding is
most and least similar to the task's first prompt (the zero-shot score of that prompt), each explained on
its embedded frame (0, 2, …, 38) most similar to the prompt. One PNG per task, saved with the evaluation
figures (`arrays/eval_plots/<variant>/prompt_saliency_<task>.png`), and one table row per explained clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from echo_pipeline import catalog, model_variants
from echo_pipeline.devices import resolve_device
from echo_pipeline.embeddings.compute import select_frame_indices
from echo_pipeline.errors import InputContractError
from echo_pipeline.evaluation.cohort import NEEDED_VIEWS
from echo_pipeline.evaluation.figure_files import save_figures
from echo_pipeline.evaluation.model_embeddings import stored_split_clips
from echo_pipeline.evaluation.prompts import DEFAULT_PROMPTS_PATH, load_prompts
from echo_pipeline.interpretation import plots
from echo_pipeline.interpretation.saliency import Explanation, PromptCam
from echo_pipeline.schemas import PROMPT_SALIENCY
from echo_pipeline.storage import DataRoot, rows_to_table
from echo_pipeline.training import registry
from echo_pipeline.upstream import read_upstream, require_tables

#: Clips explained per task at each end of the score range.
PER_END = 2


def explained_tasks(prompts) -> dict[str, str]:
    """task → the prompt explained, for the binary tasks about a device or a chamber's size."""
    wanted = set(plots.DEVICE_LABELS) | set(plots.CHAMBER_LABELS)
    return {name: task.prompts[0] for name, task in prompts.binary_tasks.items() if task.label in wanted}


def best_frame(cam: PromptCam, frames: np.ndarray, prompt, frame: int | None) -> tuple[int, Explanation]:
    """(index in the clip, explanation) of ``frame``, or of the embedded frame most similar to the prompt."""
    if frame is not None:
        if not 0 <= frame < len(frames):
            raise InputContractError(f"--frame {frame}: the clip has frames 0 to {len(frames) - 1}")
        return frame, cam.explain(frames[frame:frame + 1], prompt)[0]
    embedded = select_frame_indices(len(frames))
    pick = int(embedded[int(np.argmax(cam.similarities(frames[embedded], prompt)))])
    return pick, cam.explain(frames[pick:pick + 1], prompt)[0]


@dataclass
class SaliencyOutputs:
    table: pa.Table
    figures: dict[str, bytes] = field(default_factory=dict)  # file stem → PNG
    paths: dict[str, Path] = field(default_factory=dict)


def prompt_saliency(data_root: DataRoot, record: model_variants.ModelRecord, *, run_id: str, code_version: str,
                    prompts_path: Path = DEFAULT_PROMPTS_PATH, device: str = "auto") -> SaliencyOutputs:
    """The `prompt_saliency` rows and figures of ``record``'s model on the test split."""
    require_tables(data_root, NEEDED_VIEWS)
    clips, _, vectors = stored_split_clips(data_root, record, catalog.open_reader(data_root), "test")
    cam = PromptCam(registry.load_model(record), registry.load_tokenizer(record), device=resolve_device(device))
    rows, figures = [], {}
    for task, text in explained_tasks(load_prompts(prompts_path)).items():
        prompt = cam.prompt(text)
        scores = vectors @ prompt.numpy()
        order = np.argsort(-scores, kind="stable")
        picks = [("highest", r + 1, i) for r, i in enumerate(order[:PER_END])]
        picks += [("lowest", r + 1, i) for r, i in enumerate(order[::-1][:PER_END]) if i not in order[:PER_END]]
        panels = []
        stem = f"prompt_saliency_{task}"
        for kind, rank, i in picks:
            frames = np.load(data_root.path / clips["clip_path"][i], mmap_mode="r")
            index, e = best_frame(cam, np.asarray(frames), prompt, None)
            panels.append((e.frame, e.saliency, f"{kind} #{rank}: score {scores[i]:.3f}\nframe {index}"))
            rows.append({"variant": record.variant, "model_id": record.model_id, "task": task, "prompt": text,
                         "rank_kind": kind, "rank": rank, "sop_instance_uid": clips["sop_instance_uid"][i],
                         "score": float(scores[i]), "frame": index, "frame_similarity": e.similarity,
                         "saliency_layer": e.layer, "image_file": "", "run_id": run_id, "code_version": code_version})
        figures[stem] = plots.saliency_figure(panels, f"{record.variant} · {task}: {text!r}")
    paths = save_figures(data_root, record.variant, figures)
    for row in rows:
        row["image_file"] = str(paths[f"prompt_saliency_{row['task']}"].relative_to(data_root.path))
    return SaliencyOutputs(rows_to_table(rows, PROMPT_SALIENCY), figures, paths)


def explain(data_root: Path, *, prompt: str, out: Path, variant: str = "bpe", clip: str | None = None,
            dicom: Path | None = None, frame: int | None = None, device: str = "auto") -> str:
    """`echo-pipeline explain`: write the PromptCAM figure of a clip (by SOP Instance UID, or a DICOM file
    masked on the fly) for ``prompt`` to ``out``; returns the line printed."""
    from echo_pipeline.masking.dicom_file import masked_frames_from_dicom
    from echo_pipeline.search.searcher import Searcher

    if (clip is None) == (dicom is None):
        raise InputContractError("give exactly one of --clip SOP_UID or --dicom PATH")
    searcher = Searcher(data_root, variant, device=device)  # checks the data root and reads the record
    cam = PromptCam(searcher.model, registry.load_tokenizer(searcher.record), device=searcher.device)
    if clip is not None:
        found = read_upstream(searcher.store, "SELECT clip_path FROM masked_clips WHERE sop_instance_uid = ?",
                              ["masked_clips"], [clip]).column("clip_path").to_pylist()
        if not found:
            raise InputContractError(f"clip {clip!r} is not in masked_clips; check the SOP Instance UID "
                                     "(SELECT sop_instance_uid FROM masked_clips)")
        frames = np.asarray(np.load(searcher.store.path / found[0], mmap_mode="r"))
    else:
        frames = masked_frames_from_dicom(Path(dicom), searcher._masked_size())
    vector = cam.prompt(prompt)
    index, e = best_frame(cam, frames, vector, frame)
    png = plots.saliency_figure([(e.frame, e.saliency, f"frame {index}: cosine {e.similarity:.3f}")],
                                f"{variant}: {prompt!r}\n(PromptCAM at {e.layer})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return f"wrote {out}: frame {index}, cosine similarity {e.similarity:.4f} to the prompt, layer {e.layer}"


__all__ = ["PER_END", "SaliencyOutputs", "explain", "explained_tasks", "prompt_saliency"]
