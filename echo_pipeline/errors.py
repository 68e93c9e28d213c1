"""Exception families. Each message names the file, the problem and what to do next."""


class EchoPipelineError(Exception):
    """Base class for every error the pipeline raises on purpose."""


class InputContractError(EchoPipelineError):
    """A configured input (directory, reports file, labels file) is missing or malformed."""


class CheckpointError(EchoPipelineError):
    """A saved model or classifier is missing, corrupt or does not match its manifest."""


class CatalogError(EchoPipelineError):
    """The DuckDB catalog could not be opened or written."""


class EvaluationError(EchoPipelineError):
    """Evaluation inputs do not fit together (array shapes, lengths, missing values where none may be)."""


class DicomDecodeError(EchoPipelineError):
    """A DICOM file's pixel data cannot be decoded; ``reason`` is a code of echo_pipeline.ingest.reasons."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class EmbeddingError(EchoPipelineError):
    """Embedding inputs or stored embedding arrays are unreadable or do not fit their id table."""


class SearchIndexError(EchoPipelineError):
    """A search index cannot be built, extended or queried with the inputs given (shape, ids, model)."""


class IndexIntegrityError(SearchIndexError, CheckpointError):
    """A search index's files are missing, corrupt or do not match its manifest."""


class VocabularyError(InputContractError):
    """A tokenizer vocabulary file is missing, malformed, or was built for another tokenizer version."""


class MaskingError(EchoPipelineError):
    """A sector mask or a masked clip cannot be computed, written or read as its table row says."""


class UpstreamNotMaterialisedError(EchoPipelineError):
    """A table a step reads has not been written yet; the message names the assets to materialise first."""


class TrainingDataError(EchoPipelineError):
    """The upstream tables yield nothing to train on (no train/validation clip with a linked report)."""


class UnsafePathError(EchoPipelineError):
    """A path derived from archive data would resolve outside the data root it must be written under."""
