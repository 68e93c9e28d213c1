"""Stable assignment of work to a bounded number of shards."""

from __future__ import annotations

import hashlib
import os

DEFAULT_SHARDS = 8
SHARDS_ENV_VAR = "ECHO_PIPELINE_SHARDS"


def configured_shard_count() -> int:
    value = os.environ.get(SHARDS_ENV_VAR, str(DEFAULT_SHARDS))
    if not value.isdigit() or not 1 <= int(value) <= 4096:
        raise ValueError(f"{SHARDS_ENV_VAR}={value!r}: expected an integer between 1 and 4096")
    return int(value)


def shard_names(count: int) -> list[str]:
    width = max(2, len(str(count - 1)))
    return [f"{index:0{width}d}" for index in range(count)]


def shard_of(key: str, count: int) -> str:
    """The shard of a stable key (a relative path, a UID): the same key always lands in the same shard."""
    # surrogateescape: a path os.scandir decoded from non-UTF-8 bytes hashes as those bytes instead of raising.
    index = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "big") % count
    return shard_names(count)[index]
