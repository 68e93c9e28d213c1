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
