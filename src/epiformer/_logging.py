"""epiformer's logger (``logging.getLogger("epiformer")``), scanpy-style: what runs, how long it took, what was written.

Nothing is printed unless the user configures logging, e.g. ``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("epiformer")


@contextmanager
def timed(what: str) -> Iterator[list[str]]:
    """Log the start and the duration of `what`; strings appended to the yielded list are logged as written."""
    written: list[str] = []
    logger.info("%s: running", what)
    start = time.perf_counter()
    yield written
    took = time.perf_counter() - start
    if written:
        logger.info("%s: finished in %.2f s; wrote %s", what, took, ", ".join(written))
    else:
        logger.info("%s: finished in %.2f s", what, took)
