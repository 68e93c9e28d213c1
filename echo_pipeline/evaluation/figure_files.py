"""The evaluation figures saved as PNG files, one folder per model variant (`arrays/eval_plots/<variant>/`)."""

from __future__ import annotations

from pathlib import Path

from echo_pipeline import model_variants
from echo_pipeline.safe_paths import safe_join
from echo_pipeline.storage import DataRoot, atomic_path


def save_figures(data_root: DataRoot, variant: str, figures: dict[str, bytes]) -> dict[str, Path]:
    """Write each figure (file stem → PNG bytes) as ``<stem>.png``; returns file stem → path. Stems carry task
    names from a prompts file the user names (not ours to trust), so each path must stay in the folder."""
    directory = model_variants.eval_plots_dir(data_root, variant)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, png in figures.items():
        paths[name] = safe_join(directory, f"{name}.png")
        with atomic_path(paths[name], root=data_root.path) as tmp:
            tmp.write_bytes(png)
    return paths
