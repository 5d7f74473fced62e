"""Files in and out: text files users hand in, and files epiformer writes.

Gzip and bgzip are recognised from the bytes, not the names. Writes go to a temporary name, then a rename, so
that an interrupted write leaves the old file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (gzip and bgzip alike), whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text, decompressed when it is gzip or bgzip (undecodable bytes replaced)."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block succeeds, removed otherwise.

    The rename is atomic on one file system, so readers see the old file or the whole new one, never a part.

    Raises
    ------
    PermissionError
        If the folder of `path` cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")  # one per writer, threads too
    try:
        yield tmp
        os.replace(tmp, path)
    except PermissionError as err:
        msg = f"Cannot write {path}: {err.strerror or err}. Choose a folder you can write to."
        raise PermissionError(msg) from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def readable(path: str | os.PathLike, *, what: str, hint: str = "") -> Iterator[None]:
    """Turn decompression and tokenizer failures while reading `path` into a :class:`ValueError` naming it.

    `what` says what the file was read as (``"a manifest"``); `hint` is appended to the message.
    """
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = (
            f"{path} could not be read as {what} ({type(err).__name__}: {err}). The file looks truncated or "
            f"corrupt; download it again.{hint}"
        )
        raise ValueError(msg) from err
