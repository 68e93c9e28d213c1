"""echo-pipeline domain core: plain Python, no Dagster import.

Every module here is usable from a notebook, a script or a torchrun job. The Dagster layer
(`assets/`, `resources/`, `definitions.py`) calls into it and stays thin.
"""

__version__ = "0.1.0"

#: Recorded on every derived row; bump the stage's own version in its module when its output changes.
CODE_VERSION = __version__
