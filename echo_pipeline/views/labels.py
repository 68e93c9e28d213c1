"""Read the optional view-labels input (docs/input-contract.md): `sop_instance_uid`, `view` per labelled clip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.views.model import VIEWS

_HOW_TO_FIX = "fix the file or point --view-labels / ECHO_PIPELINE_VIEW_LABELS at the right one"


def read_view_labels(path: str | Path) -> pa.Table:
    """(sop_instance_uid, view) rows, one per labelled clip, views upper-cased and checked against VIEWS.

    Column names match after stripping spaces and lower-casing; views after stripping and upper-casing.
    Exact duplicate rows collapse to one. Raises InputContractError (naming the file, the rows and the fix)
    for a missing or unreadable file, missing columns, blank or unknown views, or a clip with two labels.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputContractError(f"view_labels {path}: unreadable ({type(exc).__name__}: {exc}); {_HOW_TO_FIX}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("sop_instance_uid", "view") if c not in frame.columns]
    if missing:
        raise InputContractError(
            f"view_labels {path}: missing column(s) {missing}; found {list(frame.columns)}; {_HOW_TO_FIX}")
    frame = pd.DataFrame({"sop_instance_uid": frame["sop_instance_uid"].astype(str).str.strip(),
                          "view": frame["view"].astype(str).str.strip().str.upper()})
    bad = frame[~frame["view"].isin(VIEWS) | (frame["sop_instance_uid"] == "")]
    if len(bad):
        examples = ", ".join(f"data row {i}: {r.sop_instance_uid!r} {r.view!r}" for i, r in bad.head(5).iterrows())
        raise InputContractError(
            f"view_labels {path}: {len(bad)} row(s) with a blank UID or a view outside {list(VIEWS)} ({examples}); "
            f"{_HOW_TO_FIX}"
        )
    frame = frame.drop_duplicates()
    conflicts = frame[frame.duplicated("sop_instance_uid", keep=False)]
    if len(conflicts):
        uids = sorted(conflicts["sop_instance_uid"].unique())
        raise InputContractError(
            f"view_labels {path}: {len(uids)} clip(s) labelled with two different views (e.g. {uids[:3]}); "
            f"keep one label per clip; {_HOW_TO_FIX}"
        )
    return pa.Table.from_pandas(frame.sort_values("sop_instance_uid"), preserve_index=False)
