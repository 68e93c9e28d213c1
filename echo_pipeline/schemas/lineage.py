"""Lineage columns carried by every derived row: the run that wrote it and the stage's code version."""

from __future__ import annotations

import pyarrow as pa

# Lineage columns carried by every derived row.
RUN_ID = pa.field("run_id", pa.string(), nullable=False)
CODE_VERSION = pa.field("code_version", pa.string(), nullable=False)
