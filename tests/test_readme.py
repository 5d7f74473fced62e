"""README.md's first example runs as written, on the data that ships with the package."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _first_python_block() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert blocks, "README.md has no ```python block"
    return blocks[0]


def test_readme_first_example_runs(capsys):
    code = _first_python_block()
    assert "ef.datasets." in code  # on bundled data, not a file the reader does not have
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    adata = namespace["adata"]
    assert adata.n_obs > 0 and "missing_fraction" in adata.obs
    assert "missing_fraction" in capsys.readouterr().out
