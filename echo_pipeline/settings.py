"""The pipeline's inputs and output location (the input contract, docs/input-contract.md), validated.

Defaults point at the demo cohort under ./data so that `dagster dev` and `echo-pipeline run` work on a laptop
after `echo-pipeline synth data/cohort`. Environment variables override them for the UI and schedules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.model_variants import MODEL_VARIANTS
from echo_pipeline.model_variants.pretrained import PretrainedSource, parse_sources, split_env
from echo_pipeline.settings_models import parse_init_from, validate_model_sources
from echo_pipeline.training.presets import PRESETS

DEMO_COHORT = Path("data/cohort")
DEFAULT_DATA_ROOT = Path("data/out")

ENV_VARS = {
    "dicom_root": "ECHO_PIPELINE_DICOM_ROOT",
    "reports_path": "ECHO_PIPELINE_REPORTS",
    "events_path": "ECHO_PIPELINE_EVENTS",
    "view_labels_path": "ECHO_PIPELINE_VIEW_LABELS",
    "view_classifier_path": "ECHO_PIPELINE_VIEW_CLASSIFIER",
    "echonet_dynamic_root": "ECHO_PIPELINE_ECHONET_ROOT",
    "data_root": "ECHO_PIPELINE_DATA_ROOT",
    "label_rules_path": "ECHO_PIPELINE_LABEL_RULES",
    "prompts_path": "ECHO_PIPELINE_PROMPTS",
}
#: ";"-separated lists: `NAME=DIR[,vocabulary=FILE][,preprocessing=P]` and `DIR` or `VARIANT=DIR`.
LIST_ENV_VARS = {"pretrained": "ECHO_PIPELINE_PRETRAINED", "init_from": "ECHO_PIPELINE_INIT_FROM"}
SPLIT_FRACTIONS_ENV_VAR = "ECHO_PIPELINE_SPLIT_FRACTIONS"
PRESET_ENV_VAR = "ECHO_PIPELINE_MODEL_PRESET"
EPOCHS_ENV_VAR = "ECHO_PIPELINE_TRAIN_EPOCHS"
#: Model presets a run may name (echo_pipeline/training/presets.py), for the command line's choices.
PRESET_NAMES = tuple(sorted(PRESETS))
#: Every environment variable the pipeline reads, with what it sets (`echo-pipeline --help` lists them).
ENV_VAR_HELP = {
    "ECHO_PIPELINE_DICOM_ROOT": "DICOM archive folder (--dicom-root)",
    "ECHO_PIPELINE_REPORTS": "reports CSV or Parquet (--reports)",
    "ECHO_PIPELINE_EVENTS": "optional procedure events CSV or Parquet (--events)",
    "ECHO_PIPELINE_VIEW_LABELS": "view labels CSV or Parquet (--view-labels)",
    "ECHO_PIPELINE_VIEW_CLASSIFIER": "a saved view classifier's card.json (--view-classifier)",
    "ECHO_PIPELINE_ECHONET_ROOT": "EchoNet-Dynamic folder (--echonet-root)",
    "ECHO_PIPELINE_DATA_ROOT": "output folder (--data-root)",
    "ECHO_PIPELINE_SPLIT_FRACTIONS": "patient split TRAIN,VAL,TEST (--split-fractions)",
    "ECHO_PIPELINE_MODEL_PRESET": "model preset (--preset)",
    "ECHO_PIPELINE_TRAIN_EPOCHS": "training epochs (--epochs)",
    "ECHO_PIPELINE_LABEL_RULES": "a site's report label rules YAML, merged over the packaged ones (--label-rules)",
    "ECHO_PIPELINE_MAX_DECODED_MB": "decoded-size budget per DICOM file in MiB (default 2048; larger: too_large)",
    "ECHO_PIPELINE_PRETRAINED": "published models as variants, NAME=DIR[,vocabulary=FILE]...;NAME2=DIR2 (--pretrained)",
    "ECHO_PIPELINE_INIT_FROM": "start training from weights: DIR or VARIANT=DIR;... (--init-from)",
    "ECHO_PIPELINE_PROMPTS": "evaluation prompts: a prompts YAML or a published prompt JSON (--prompts)",
    "ECHO_PIPELINE_INDEX_KIND": "FAISS index kind: flat (default) or ivf (docs/search.md)",
    "ECHO_PIPELINE_SHARDS": "shard count of the per-file stages (default 8; a deployment setting)",
    "ECHO_PIPELINE_PSEUDONYM_KEY": "pseudonymisation key (default: DATA_ROOT/secrets/pseudonym.key)",
    "ECHO_PIPELINE_MIN_LINK_COVERAGE": "least share of studies with a linked report (default 0.8)",
    "DAGSTER_HOME": "Dagster instance folder that records runs for the UI (optional)",
}
#: The paper's train : validation : test by patient. The demo uses larger evaluation shares (README).
ARCHIVE_SPLIT_FRACTIONS = (0.89, 0.01, 0.10)
DEMO_SPLIT_FRACTIONS = (0.6, 0.1, 0.3)


@dataclass(frozen=True)
class PipelineSettings:
    """Where the inputs are and where outputs go. Optional inputs are None when not configured."""

    dicom_root: Path = DEMO_COHORT / "dicom"
    reports_path: Path = DEMO_COHORT / "reports.csv"
    #: Procedure events (patient, procedure, date) for the clinical-change tables; None = not configured.
    events_path: Path | None = None
    view_labels_path: Path | None = DEMO_COHORT / "view_labels.csv"
    view_classifier_path: Path | None = None  # a saved view classifier's card.json, used when there are no labels
    echonet_dynamic_root: Path | None = None
    data_root: Path = DEFAULT_DATA_ROOT
    split_fractions: tuple[float, float, float] = ARCHIVE_SPLIT_FRACTIONS
    #: Model preset (echo_pipeline/training/presets.py): "echo-tiny" runs on a laptop, "echoclip" is the paper's.
    model_preset: str = "echo-tiny"
    #: Training epochs; None keeps the preset's.
    train_epochs: int | None = None
    #: A site's report label rules (YAML) merged over the packaged ones; None uses the packaged rules only.
    label_rules_path: Path | None = None
    #: Published models registered as variants: `NAME=DIR[,vocabulary=FILE][,preprocessing=P]` each.
    pretrained: tuple[str, ...] = ()
    #: Start weights of clip_model: `DIR` (every trained variant) or `VARIANT=DIR` (that one; wins).
    init_from: tuple[str, ...] = ()
    #: Evaluation prompts (a prompts YAML or a published prompt JSON); None = the versioned prompts.yaml.
    prompts_path: Path | None = None

    @classmethod
    def from_env(cls, **overrides) -> "PipelineSettings":
        """Defaults, then environment variables, then explicit overrides (None keeps the earlier value)."""
        values = {}
        for name, variable in ENV_VARS.items():
            if os.environ.get(variable):
                values[name] = Path(os.environ[variable])
        if os.environ.get(SPLIT_FRACTIONS_ENV_VAR):
            values["split_fractions"] = parse_split_fractions(os.environ[SPLIT_FRACTIONS_ENV_VAR])
        if os.environ.get(PRESET_ENV_VAR):
            values["model_preset"] = os.environ[PRESET_ENV_VAR]
        if os.environ.get(EPOCHS_ENV_VAR):
            values["train_epochs"] = parse_epochs(os.environ[EPOCHS_ENV_VAR], EPOCHS_ENV_VAR)
        for name, variable in LIST_ENV_VARS.items():
            if os.environ.get(variable):
                values[name] = split_env(os.environ[variable])
        values.update({name: value for name, value in overrides.items() if value is not None})
        path_fields = set(ENV_VARS)
        return cls(**{name: Path(v) if name in path_fields else v for name, v in values.items()})

    @property
    def pretrained_sources(self) -> dict[str, PretrainedSource]:
        """The registered published models by name (parsed; InputContractError for a malformed entry)."""
        return parse_sources(self.pretrained, "--pretrained / ECHO_PIPELINE_PRETRAINED")

    @property
    def variant_names(self) -> tuple[str, ...]:
        """Every model variant of this deployment: the trained ones, then the pretrained ones."""
        return (*MODEL_VARIANTS, *self.pretrained_sources)

    def init_from_for(self, variant: str) -> Path | None:
        """The start weights of ``variant``'s training: its own `VARIANT=DIR` entry, else a bare `DIR`."""
        return parse_init_from(self.init_from).get(variant, parse_init_from(self.init_from).get(None))

    @property
    def pseudonym_key_file(self) -> Path:
        return Path(self.data_root) / "secrets" / "pseudonym.key"

    def validate(self) -> None:
        """Raise InputContractError naming the input, the problem and the fix."""
        if self.model_preset not in PRESETS:
            raise InputContractError(
                f"model preset {self.model_preset!r} is unknown; set --preset / {PRESET_ENV_VAR} to one of "
                f"{', '.join(PRESET_NAMES)}"
            )
        if self.train_epochs is not None and self.train_epochs < 1:
            raise InputContractError(f"train_epochs {self.train_epochs}: set --epochs / {EPOCHS_ENV_VAR} to 1 or more")
        _require_dir(self.dicom_root, "dicom_root", "--dicom-root / ECHO_PIPELINE_DICOM_ROOT")
        _require_file(self.reports_path, "reports", "--reports / ECHO_PIPELINE_REPORTS")
        if self.events_path is not None:
            _require_file(self.events_path, "events", "--events / ECHO_PIPELINE_EVENTS")
        if self.view_labels_path is not None:
            _require_file(self.view_labels_path, "view_labels", "--view-labels / ECHO_PIPELINE_VIEW_LABELS")
        if self.view_classifier_path is not None and not Path(self.view_classifier_path).is_file():
            raise InputContractError(
                f"view classifier {self.view_classifier_path}: no such file; point --view-classifier / "
                "ECHO_PIPELINE_VIEW_CLASSIFIER at a saved classifier's card.json "
                "(DATA_ROOT/arrays/view_classifier/<classifier_id>/card.json)"
            )
        if self.label_rules_path is not None:
            from echo_pipeline.reports.rules import load_label_rules

            load_label_rules(self.label_rules_path)  # refuses a malformed file with its line, before any work
        if self.prompts_path is not None and not Path(self.prompts_path).is_file():
            raise InputContractError(f"prompts {self.prompts_path}: no such file; point --prompts / ECHO_PIPELINE_PROMPTS "
                                     "at a prompts YAML or a published prompt JSON")
        validate_model_sources(self)
        if self.echonet_dynamic_root is not None:
            _require_dir(self.echonet_dynamic_root, "echonet_dynamic_root", "--echonet-root")
            if not (Path(self.echonet_dynamic_root) / "FileList.csv").is_file():
                raise InputContractError(
                    f"echonet_dynamic_root {self.echonet_dynamic_root}: no FileList.csv inside; point it at the folder "
                    "holding FileList.csv and Videos/ (EchoNet-Dynamic layout)"
                )


def parse_split_fractions(text: str) -> tuple[float, float, float]:
    """Parse "train,validation,test" fractions such as "0.89,0.01,0.10"."""
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputContractError(
            f"split fractions {text!r}: expected three non-negative numbers train,validation,test summing to 1, "
            "e.g. 0.89,0.01,0.10"
        )
    return fractions  # type: ignore[return-value]


def parse_epochs(text: str, source: str) -> int:
    """A positive whole number of epochs; `source` names the flag or variable for the message."""
    try:
        epochs = int(text)
    except ValueError:
        epochs = 0
    if epochs < 1:
        raise InputContractError(f"{source}={text!r}: expected a whole number of epochs, at least 1")
    return epochs


def _require_dir(path: Path, name: str, how: str) -> None:
    path = Path(path)
    if not path.exists():
        raise InputContractError(f"{name} {path}: does not exist; create it or set {how} to the archive folder")
    if not path.is_dir():
        raise InputContractError(f"{name} {path}: is a file, expected a directory; set {how} to a folder")


def _require_file(path: Path, name: str, how: str) -> None:
    path = Path(path)
    if not path.exists():
        raise InputContractError(f"{name} {path}: does not exist; set {how} to a CSV or Parquet file")
    if not path.is_file():
        raise InputContractError(f"{name} {path}: is a directory, expected a CSV or Parquet file; set {how}")
    if path.suffix.lower() not in {".csv", ".parquet", ".pq"}:
        raise InputContractError(f"{name} {path}: unsupported extension {path.suffix!r}; provide .csv or .parquet")
