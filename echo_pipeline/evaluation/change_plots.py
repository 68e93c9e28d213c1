"""Figures of studies over time, as PNG bytes: similarity trajectories around a procedure, and serial LVEF
change against similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from echo_pipeline.evaluation.plots import DPI, _grid, plt
from echo_pipeline.figures import figure_png


def trajectory_figure(rows: pd.DataFrame, title: str) -> bytes:
    """Days from the event (x) against similarity to the earliest study (y), one line per patient and event
    starting at the reference (similarity 1), one panel per procedure; the event is the dashed line at 0.

    ``rows``: procedure, event_id, days_from_event, reference_days_from_event, value (similarity rows)."""
    procedures = sorted(rows["procedure"].unique()) or ["(none)"]
    fig, axes = _grid(len(procedures), size=3.4)
    for ax, procedure in zip(axes, procedures):
        for _, line in rows[rows["procedure"] == procedure].groupby("event_id", sort=True):
            line = line.sort_values("days_from_event")
            x = np.r_[line["reference_days_from_event"].iloc[0], line["days_from_event"].to_numpy()]
            y = np.r_[1.0, line["value"].to_numpy()]
            ax.plot(x, y, marker="o", markersize=3, linewidth=1, alpha=0.7)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_title(procedure, fontsize=9)
        ax.set_xlabel("days from event", fontsize=8)
        ax.set_ylabel("similarity to earliest study", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig, DPI)


def serial_change_scatter(panels: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> bytes:
    """|reported LVEF difference| (x) against study similarity (y) per pair of a patient's studies, one panel
    per model: ``panels[label] = (lvef_difference, similarity, spearman_rho)``."""
    fig, axes = _grid(max(len(panels), 1), size=3.4)
    for ax, (label, (diff, sim, rho)) in zip(axes, panels.items()):
        ax.scatter(diff, sim, s=10, alpha=0.6)
        ax.set_title(f"{label} (Spearman ρ {rho:.2f})", fontsize=9)
        ax.set_xlabel("|LVEF difference| (points)", fontsize=8)
        ax.set_ylabel("study similarity", fontsize=8)
    fig.tight_layout()
    return figure_png(fig, DPI)
