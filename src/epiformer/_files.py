"""Opening the text files users hand in: gzip and bgzip recognised from their bytes, not their names."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (gzip and bgzip alike), whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text, decompressed when it is gzip or bgzip (undecodable bytes replaced)."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")
