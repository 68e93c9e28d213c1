"""Studies over time: study embeddings, procedure events, and the analyses that follow a patient's studies.

- `embeddings`: `study_embeddings`, the normalised mean of a study's A4C clip embeddings, per model variant.
"""

from echo_pipeline import CODE_VERSION as _PACKAGE_VERSION
from echo_pipeline.studies.embeddings import (TABLE, StudyVectors, build_study_embeddings, load_study_embeddings,
                                              mean_by_study)

#: Bump STUDIES_VERSION when the stored study rows of the same inputs would change.
STUDIES_VERSION = "1"
CODE_VERSION = f"{_PACKAGE_VERSION}+studies.{STUDIES_VERSION}"

__all__ = ["CODE_VERSION", "TABLE", "StudyVectors", "build_study_embeddings", "load_study_embeddings", "mean_by_study"]
