"""Keyed pseudonymisation of direct identifiers (patient ids, accession numbers).

The key is configuration, never code: it lives in a file outside git (by default created once under the data
root with owner-only permissions) or in the ``ECHO_PIPELINE_PSEUDONYM_KEY`` environment variable. Ingestion
and report linking use the same key, so hashed ids join across tables while the raw ids appear nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path, PurePosixPath

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


# --- paths: archives name folders after patients, so a path is pseudonymised component by component --------
_COMPONENT_HEX_CHARS = 16  # 64 bits per folder or file name: unique among the names of any real archive
#: Kept extensions: a dot, a letter, up to 4 more letters or digits (".dcm", ".DCM", ".dicom"); anything
#: longer, or digit-led (".12345678"), may itself be an identifier and is hashed with the rest of the name.
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
#: What a pseudonymised path looks like (the `no_raw_identifiers` check tests relative_path columns with it).
PSEUDONYM_PATH = rf"^[0-9a-f]{{{_COMPONENT_HEX_CHARS}}}(?:\.[A-Za-z][A-Za-z0-9]{{0,4}})?" \
                 rf"(?:/[0-9a-f]{{{_COMPONENT_HEX_CHARS}}}(?:\.[A-Za-z][A-Za-z0-9]{{0,4}})?)*$"

def pseudonymise_component(name: str, key: bytes) -> str:
    """One folder or file name as a keyed hash; a short alphabetic extension is kept."""
    match = _EXTENSION.search(name)
    extension = match.group(0) if match and match.start() > 0 else ""
    stem = name[: len(name) - len(extension)]
    digest = hmac.new(key, f"path:{stem}".encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
    return digest[:_COMPONENT_HEX_CHARS] + extension


def pseudonymise_path(relative_path: str, key: bytes) -> str:
    """A POSIX path relative to dicom_root, pseudonymised component by component."""
    return "/".join(pseudonymise_component(part, key) for part in PurePosixPath(relative_path).parts)
