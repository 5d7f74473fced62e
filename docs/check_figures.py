"""Checks that the built documentation shows every figure the committed tutorials draw.

Run after `sphinx-build` (``make docs`` does): ``python docs/check_figures.py docs/_build/html``. For each
notebook in ``tutorials/`` it counts the figures among the committed outputs and the images on the built page,
and fails when a tutorial that plots has no committed figure or when its page shows fewer figures than it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
#: what a cell that draws calls
PLOTTING = re.compile(r"\b(ef\.pl\.|plt\.|sc\.pl\.|sq\.pl\.)")
#: an image myst-nb wrote out of a cell output
BUILT_IMAGE = re.compile(r"<img\b[^>]*\bsrc=\"[^\"]*_images/", re.IGNORECASE)


def committed_figures(notebook: nbformat.NotebookNode) -> int:
    """The number of figure outputs in a committed notebook."""
    return sum(
        any(kind in output.get("data", {}) for kind in IMAGE_TYPES)
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def plots(notebook: nbformat.NotebookNode) -> bool:
    """Whether a code cell of the notebook calls a plotting function."""
    return any(cell.cell_type == "code" and PLOTTING.search(cell.source) for cell in notebook.cells)


def built_figures(page: Path) -> int:
    """The number of output images on a built HTML page."""
    return len(BUILT_IMAGE.findall(page.read_text(encoding="utf-8")))


def problems(html: Path, tutorials: Path = TUTORIALS) -> list[str]:
    """What is wrong with the figures of each tutorial, one line each (none when all is well)."""
    found = []
    for path in sorted(tutorials.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        committed = committed_figures(notebook)
        page = html / "tutorials" / f"{path.stem}.html"
        if plots(notebook) and committed == 0:
            found.append(f"{path.name}: it plots but no figure is committed (run `make tutorials`).")
        if not page.is_file():
            found.append(f"{path.name}: no built page {page}.")
            continue
        built = built_figures(page)
        if built < committed:
            found.append(f"{path.name}: {committed} figures committed, {built} on the built page {page}.")
        print(f"{path.name}: {committed} figures committed, {built} on the built page")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the folder of the built HTML (docs/_build/html)")
    found = problems(parser.parse_args(argv).html)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
