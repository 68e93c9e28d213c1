"""A saved view classifier: safetensors weights plus a JSON card, verified by sha256 on every load.

Layout of one classifier (docs/views.md):

    <dir>/<classifier_id>/weights.safetensors   the network's state dict (never pickled)
    <dir>/<classifier_id>/card.json             classes, input size, architecture, training data hash,
                                                validation accuracy and confusion matrix, weights sha256
    <dir>/current.json                          {"card": "<classifier_id>/card.json"}: the one predictions use

``classifier_id`` is the first 16 hex digits of the weights file's sha256, so the id changes whenever the
weights do, and a card cannot silently describe other weights.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from echo_pipeline.errors import CheckpointError
from echo_pipeline.storage import file_sha256
from echo_pipeline.storage import atomic_path
from echo_pipeline.views.model import ModelSpec, build_model

CARD_FORMAT = "echo-pipeline/view-classifier/1"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
CURRENT_FILE = "current.json"
ID_LENGTH = 16
_REQUIRED = ("format", "classifier_id", "weights_file", "weights_sha256", "model")


@dataclass(frozen=True)
class LoadedClassifier:
    """A verified classifier: the network in eval mode, its spec and its card."""

    model: nn.Module
    spec: ModelSpec
    card: dict
    card_path: Path

    @property
    def classifier_id(self) -> str:
        return str(self.card["classifier_id"])


def save_classifier(directory: str | Path, model: nn.Module, spec: ModelSpec, card: dict) -> Path:
    """Write weights and card under ``directory/<classifier_id>/`` (atomically) and return the card's path.

    ``card`` holds the training facts (data hash, metrics, ...); the identity fields are filled in here.
    """
    directory = Path(directory)
    staging = directory / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    with atomic_path(staging / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT})
    digest = file_sha256(staging / WEIGHTS_FILE)
    classifier_id = digest[:ID_LENGTH]
    target = directory / classifier_id
    target.mkdir(parents=True, exist_ok=True)
    (staging / WEIGHTS_FILE).replace(target / WEIGHTS_FILE)
    full = {**card, "format": CARD_FORMAT, "classifier_id": classifier_id, "weights_file": WEIGHTS_FILE,
            "weights_sha256": digest, "model": spec.to_dict()}
    _write_json(target / CARD_FILE, full)
    return target / CARD_FILE


def set_current(directory: str | Path, card_path: Path) -> None:
    """Make ``card_path`` (inside ``directory``) the classifier that predictions use."""
    directory = Path(directory)
    _write_json(directory / CURRENT_FILE, {"card": Path(card_path).resolve().relative_to(directory.resolve()).as_posix()})


def current_card_path(directory: str | Path) -> Path | None:
    """The card named by ``directory/current.json``, or None when no classifier was made current yet."""
    pointer = Path(directory) / CURRENT_FILE
    if not pointer.is_file():
        return None
    card = _read_json(pointer).get("card")
    if not isinstance(card, str):
        raise CheckpointError(
            f"{pointer}: expected {{\"card\": \"<classifier_id>/card.json\"}}; rematerialize view_classifier")
    return Path(directory) / card


def install_classifier(source: str | Path, directory: str | Path) -> Path:
    """Verify the classifier at ``source`` and copy it into ``directory/<classifier_id>/``; returns the copy's card."""
    loaded = load_classifier(source)
    target = Path(directory) / loaded.classifier_id
    target.mkdir(parents=True, exist_ok=True)
    with atomic_path(target / WEIGHTS_FILE) as tmp:
        shutil.copyfile(loaded.card_path.parent / loaded.card["weights_file"], tmp)
    _write_json(target / CARD_FILE, {**loaded.card, "weights_file": WEIGHTS_FILE})
    load_classifier(target / CARD_FILE)  # the copy must verify too
    return target / CARD_FILE


def read_card(directory: str | Path, classifier_id: str) -> dict | None:
    """The card of classifier ``classifier_id`` saved under ``directory`` (JSON only, weights not verified),
    or None when it is not there."""
    path = Path(directory) / classifier_id / CARD_FILE
    return _read_json(path) if path.is_file() else None


def load_classifier(path: str | Path) -> LoadedClassifier:
    """Load and verify a classifier from its card (``card.json``), its folder, or its weights file.

    Raises CheckpointError naming the file when anything is missing, unreadable, or not what the card says.
    """
    card_path = _card_path(Path(path))
    card = _read_json(card_path)
    missing = [key for key in _REQUIRED if key not in card]
    if missing or card.get("format") != CARD_FORMAT:
        raise CheckpointError(
            f"{card_path}: not a view-classifier card (expected format {CARD_FORMAT!r} and keys {list(_REQUIRED)}; "
            f"missing {missing}, format {card.get('format')!r}); point to the card.json written by the view_classifier asset"
        )
    weights_name = str(card["weights_file"])
    weights = card_path.parent / weights_name
    if Path(weights_name).name != weights_name or not weights.is_file():
        raise CheckpointError(f"{card_path}: weights file {weights_name!r} not found beside the card; "
                              "copy the classifier folder whole, or retrain (materialize view_classifier with view labels)")
    digest = file_sha256(weights)
    if digest != card["weights_sha256"] or not digest.startswith(str(card["classifier_id"])):
        raise CheckpointError(
            f"{weights}: sha256 {digest} differs from the card's {card['weights_sha256']} (classifier "
            f"{card['classifier_id']}); the file is corrupt or was modified. Restore it from a backup or retrain"
        )
    try:
        spec = ModelSpec.from_dict(card["model"])
        state = load_file(str(weights))
    except (SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable classifier ({type(exc).__name__}: {exc}); retrain it") from exc
    try:
        model = build_model(spec)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:  # timm raises RuntimeError for an unknown architecture too
        raise CheckpointError(
            f"{weights}: weights do not fit architecture {spec.architecture!r} with {len(spec.classes)} classes "
            f"({type(exc).__name__}: {str(exc)[:300]}); the card and weights come from different classifiers"
        ) from exc
    model.eval()
    return LoadedClassifier(model, spec, card, card_path)


def _card_path(path: Path) -> Path:
    if path.is_dir():
        path = path / CARD_FILE
    elif path.suffix == ".safetensors":
        path = path.with_name(CARD_FILE)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no view-classifier card here; name the card.json (or its folder) of a classifier saved by the "
            "view_classifier asset, e.g. DATA_ROOT/arrays/view_classifier/<classifier_id>/card.json"
        )
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({type(exc).__name__}: {exc}); restore the file or retrain") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}; restore the file or retrain")
    return data


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
