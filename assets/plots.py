"""Plots for asset metadata: PNGs (matplotlib, Agg) embedded in markdown (`echo_pipeline.figures`) so the UI
shows them inline."""

import dagster as dg

from echo_pipeline.figures import figure_markdown


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
    return dg.MetadataValue.md(figure_markdown(figure))
