"""The model-source settings checked before any stage runs: `--pretrained` directories and `--init-from`.

Kept apart from `settings` because checking them loads torch and the weights (a pretrained directory must
load, with its tokenizer, or the run is refused naming the file and the reason); a run without either
setting never imports torch here.
"""

from __future__ import annotations

from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.model_variants import MODEL_VARIANTS

INIT_FROM_HELP = "--init-from / ECHO_PIPELINE_INIT_FROM"


def parse_init_from(entries) -> dict[str | None, Path]:
    """`DIR` → {None: DIR} (every trained variant); `VARIANT=DIR` → {VARIANT: DIR}; a key given twice is refused."""
    out: dict[str | None, Path] = {}
    for entry in entries:
        variant, sep, directory = entry.partition("=")
        key = variant if sep and variant in MODEL_VARIANTS else None
        path = Path(directory if key else entry)
        if key in out:
            raise InputContractError(f"{INIT_FROM_HELP}: {'variant ' + key if key else 'a bare DIR'} is given twice")
        out[key] = path
    return out


def validate_model_sources(settings) -> None:
    """Refuse (InputContractError naming the file and reason) a pretrained directory that does not load or an
    init-from directory that is not a readable hub layout. Nothing is imported when neither is set."""
    sources = settings.pretrained_sources
    starts = parse_init_from(settings.init_from)
    if not sources and not starts:
        return
    from echo_pipeline.training.pretrained import check_hub_directory, check_loads

    for source in sources.values():
        check_loads(source)
    for variant, directory in starts.items():
        check_hub_directory(directory, f"{INIT_FROM_HELP} {variant + '=' if variant else ''}")
