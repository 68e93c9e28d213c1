"""A4C view filtering: a small CNN names each clip's view, a pixel test flags colour Doppler (docs/views.md).

- `read_view_labels(path)`: the optional labels input, validated.
- `load_labelled_clips(...)`, `train_classifier(clips, spec, config)`: train on labelled clips, split by patient.
- `save_classifier(...)`, `load_classifier(path)`: safetensors + JSON card, sha256-verified on load.
- `predict_views(classifier, instances, paths, ...)`: the `view_predictions` rows of a shard.
- `select_a4c(predictions, instances, A4cFilter(...), ...)`: the `a4c_clips` rows and why others were left out.
- `provide.provide_classifier(...)`: the whole `view_classifier` step (train on labels, or install a saved one).
- `inputs`: the upstream rows the steps read; `truth_agreement`: agreement with a synthetic cohort's truth.
"""

from echo_pipeline.views.checkpoint import (
    LoadedClassifier,
    current_card_path,
    install_classifier,
    load_classifier,
    read_card,
    save_classifier,
    set_current,
)
from echo_pipeline.views.colour import ColourThresholds, is_colour_doppler
from echo_pipeline.views.frames import SamplingSpec, load_clip
from echo_pipeline.views.labels import read_view_labels
from echo_pipeline.views.metrics import confusion_markdown
from echo_pipeline.views.model import VIEWS, ModelSpec
from echo_pipeline.views.predict import predict_views
from echo_pipeline.views.select import DECISIONS, A4cFilter, select_a4c
from echo_pipeline.views.train import (
    LabelledClips,
    TrainConfig,
    TrainingResult,
    load_labelled_clips,
    train_classifier,
    training_clips_table,
)

#: Stage code version, recorded on every row; bump it when what the stage writes changes.
CODE_VERSION = "views-1"

__all__ = [
    "CODE_VERSION",
    "DECISIONS",
    "VIEWS",
    "A4cFilter",
    "ColourThresholds",
    "LabelledClips",
    "LoadedClassifier",
    "ModelSpec",
    "SamplingSpec",
    "TrainConfig",
    "TrainingResult",
    "confusion_markdown",
    "current_card_path",
    "install_classifier",
    "is_colour_doppler",
    "load_classifier",
    "load_clip",
    "load_labelled_clips",
    "predict_views",
    "read_card",
    "read_view_labels",
    "save_classifier",
    "select_a4c",
    "set_current",
    "train_classifier",
    "training_clips_table",
]
