"""Studies over time: study embeddings, procedure events, and the analyses that follow a patient's studies.

- `embeddings`: `study_embeddings`, the normalised mean of a study's A4C clip embeddings, per model variant.
- `events`: the procedure-events file validated into `procedure_events` and `event_quarantine`.
"""

from echo_pipeline import CODE_VERSION as _PACKAGE_VERSION
from echo_pipeline.studies.events import NO_EVENTS_NOTE, PROCEDURES, read_events, read_events_if_configured
from echo_pipeline.studies.embeddings import (TABLE, StudyVectors, build_study_embeddings, load_study_embeddings,
                                              mean_by_study)

#: Bump STUDIES_VERSION when the stored study rows of the same inputs would change.
STUDIES_VERSION = "1"
CODE_VERSION = f"{_PACKAGE_VERSION}+studies.{STUDIES_VERSION}"

__all__ = ["CODE_VERSION", "NO_EVENTS_NOTE", "PROCEDURES", "read_events", "read_events_if_configured", "TABLE", "StudyVectors", "build_study_embeddings", "load_study_embeddings", "mean_by_study"]
