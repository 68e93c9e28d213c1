"""Plots for asset metadata: PNGs (matplotlib, Agg) embedded in markdown so the UI shows them inline."""

import base64
import io

import dagster as dg


def figure_markdown(figure) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG in a markdown metadata value (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})")


def line_plot_markdown(x: list, series: dict[str, list], *, title: str, xlabel: str) -> dg.MetadataValue:
    """One small panel per series (they have different units), sharing the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3), squeeze=False)
    for axis, (name, values) in zip(axes[0], series.items()):
        axis.plot(x, values, marker="o")
        axis.set_title(name)
        axis.set_xlabel(xlabel)
    figure.suptitle(title)
    return figure_markdown(figure)
