"""The committed tutorials hold their outputs and figures, and nothing a user cannot act on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "tutorials").glob("*.ipynb"))
#: text a user cannot act on, which the tutorials must keep out of their outputs
NOISE = ("IProgress not found", "💡 Tip", "GPU available:", "TPU available:", "Traceback")


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_figures", ROOT / "docs" / "check_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_figures = _load_checker()


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(path: Path) -> list:
    return [cell for cell in _read(path).cells if cell.cell_type == "code"]


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return str(output.get("data", {}).get("text/plain", ""))


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_committed_tutorial_was_run_top_to_bottom_with_its_outputs(path):
    cells = _code_cells(path)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "run `make tutorials`"
    with_outputs = sum(bool(cell.outputs) for cell in cells)
    assert with_outputs >= len(cells) / 2, f"{with_outputs} of {len(cells)} code cells have outputs"
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(_text(o) for o in outputs)
    assert [noise for noise in NOISE if noise in text] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_tutorial_that_plots_has_committed_figures(path):
    notebook = _read(path)
    if check_figures.plots(notebook):
        assert check_figures.committed_figures(notebook) >= 1


def _notebook_with_figures(path: Path, n: int) -> None:
    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    cells = [nbformat.v4.new_code_cell("ef.pl.missingness(adata)", execution_count=1)]
    cells[0].outputs = [nbformat.v4.new_output("display_data", data=png) for _ in range(n)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def test_the_figure_check_counts_committed_and_built_figures(tmp_path):
    tutorials, html = tmp_path / "tutorials", tmp_path / "html"
    tutorials.mkdir()
    (html / "tutorials").mkdir(parents=True)
    _notebook_with_figures(tutorials / "01_plots.ipynb", 2)
    page = html / "tutorials" / "01_plots.html"
    image = '<img alt="_images/abc.png" src="../_images/abc.png" />'
    page.write_text(f"<html><img src='logo.svg'>{image}{image}</html>")
    assert check_figures.committed_figures(_read(tutorials / "01_plots.ipynb")) == 2
    assert check_figures.built_figures(page) == 2
    assert check_figures.problems(html, tutorials) == []

    page.write_text(f"<html>{image}</html>")
    assert check_figures.problems(html, tutorials) == [
        f"01_plots.ipynb: 2 figures committed, 1 on the built page {page}."
    ]


def test_the_figure_check_fails_a_plotting_tutorial_without_figures(tmp_path):
    tutorials, html = tmp_path / "tutorials", tmp_path / "html"
    tutorials.mkdir()
    (html / "tutorials").mkdir(parents=True)
    _notebook_with_figures(tutorials / "02_empty.ipynb", 0)
    (html / "tutorials" / "02_empty.html").write_text("<html></html>")
    assert check_figures.problems(html, tutorials) == [
        "02_empty.ipynb: it plots but no figure is committed (run `make tutorials`)."
    ]
