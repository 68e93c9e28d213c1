"""Figures as PNG bytes and as inline markdown images: the one way the pipeline shows a plot in Dagster's UI.

The core returns markdown strings (it imports no Dagster); an asset wraps one in `dg.MetadataValue.md`.
"""

from __future__ import annotations

import base64
import io


def figure_png(figure, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes, trimmed to its content; the figure is closed (pyplot keeps it otherwise)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A markdown image with the PNG inlined as a data URI (renders in Dagster's metadata view)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def figure_markdown(figure, alt: str = "plot", dpi: int = 90) -> str:
    """A matplotlib figure as an inline markdown image (the figure is closed)."""
    return markdown_image(figure_png(figure, dpi), alt)
