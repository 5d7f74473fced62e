"""epiformer's logger (``logging.getLogger("epiformer")``), scanpy-style: what runs, how long it took, what was written.

Nothing is printed unless the user configures logging, e.g. ``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
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


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` attributed to the first caller outside epiformer, however deep the call came from."""
    package = os.path.dirname(__file__)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
