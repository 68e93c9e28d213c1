"""The one PNG-to-markdown rule: a figure becomes an inline data-URI PNG and is closed."""

import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from assets.plots import line_plot_markdown  # noqa: E402
from echo_pipeline.figures import figure_markdown  # noqa: E402


def test_figure_markdown_inlines_a_decodable_png_and_closes_the_figure():
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    text = figure_markdown(figure, alt="curve")
    match = re.fullmatch(r"!\[curve\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert figure.number not in plt.get_fignums()


def test_the_asset_wrapper_carries_the_core_markdown():
    value = line_plot_markdown([1, 2], {"loss": [0.5, 0.4]}, title="t", xlabel="epoch")
    assert value.value.startswith("![plot](data:image/png;base64,")
