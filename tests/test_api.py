"""Every public function is documented (numpydoc) and listed in docs/api.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import epiformer as ef

API = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
SUBPACKAGES = ["io", "datasets", "pp", "tl", "pl", "models"]
PUBLIC = [(sub, name) for sub in SUBPACKAGES for name in getattr(ef, sub).__all__]


@pytest.mark.parametrize(("sub", "name"), PUBLIC, ids=[f"{s}.{n}" for s, n in PUBLIC])
def test_documented_and_listed(sub, name):
    obj = getattr(getattr(ef, sub), name)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"ef.{sub}.{name} has no docstring"
    assert f"{sub}.{name}" in API, f"ef.{sub}.{name} is not listed in docs/api.md"
    if inspect.isfunction(obj):
        params = [p for p in inspect.signature(obj).parameters if p not in {"self", "kwargs", "args"}]
        if params:
            assert "Parameters\n----------" in doc, f"ef.{sub}.{name}: no Parameters section"
            section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
            documented = {
                n.strip() for line in section.splitlines() if line and not line[0].isspace() for n in line.split(",")
            }
            missing = set(params) - documented
            assert not missing, f"ef.{sub}.{name}: parameters {sorted(missing)} undocumented"
        assert "Returns\n-------" in doc, f"ef.{sub}.{name}: no Returns section"


def test_signatures_keyword_only():
    """scanpy convention: the data object first, every option keyword-only (an optional model may follow the data)."""
    for sub, name in PUBLIC:
        obj = getattr(getattr(ef, sub), name)
        if not inspect.isfunction(obj):
            continue
        positional = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty and p.name != "model"
        ]
        assert not positional or sub == "datasets", f"ef.{sub}.{name}: options {positional} are not keyword-only"
