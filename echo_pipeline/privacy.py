"""Keyed pseudonymisation of direct identifiers (patient ids, accession numbers).

The key is configuration, never code: it lives in a file outside git (by default created once under the data
root with owner-only permissions) or in the ``ECHO_PIPELINE_PSEUDONYM_KEY`` environment variable. Ingestion
and report linking use the same key, so hashed ids join across tables while the raw ids appear nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV_VAR = "ECHO_PIPELINE_PSEUDONYM_KEY"
_HASH_HEX_CHARS = 20  # 80 bits: collision-free in practice for 10^8 identifiers, short enough to read


def load_or_create_key(key_file: Path) -> bytes:
    """Return the pseudonymisation key: the environment variable wins, else the key file (created if absent)."""
    from_env = os.environ.get(KEY_ENV_VAR)
    if from_env:
        return from_env.encode()
    key_file = Path(key_file)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return key_file.read_text().strip().encode()


def pseudonymise(value: str | None, key: bytes, kind: str) -> str | None:
    """Keyed hash of an identifier; ``kind`` (e.g. "patient", "accession") keeps the namespaces apart.

    Blank or missing values stay missing, so they never collide into one shared pseudonym.
    """
    if value is None:
        return None
    normalised = str(value).strip()
    if not normalised:
        return None
    digest = hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()
    return f"{kind[:3]}_{digest[:_HASH_HEX_CHARS]}"
