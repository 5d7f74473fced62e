"""Where epiformer keeps files it generates (synthetic genomes): ``EPIFORMER_CACHE`` or the user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the cache folder.
CACHE_ENV = "EPIFORMER_CACHE"


def cache_dir(path: str | Path | None = None) -> Path:
    """The cache folder, created when missing.

    `path` wins; otherwise ``$EPIFORMER_CACHE``; otherwise ``$XDG_CACHE_HOME/epiformer`` (by default
    ``~/.cache/epiformer``).
    """
    if path is None:
        env = os.environ.get(CACHE_ENV)
        if env:
            path = env
        else:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            path = Path(base) / "epiformer"
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
