"""Print the package's declared lower bounds as exact pins, one per line (``name>=1.2`` -> ``name==1.2``).

Usage: ``minimum_pins.py PYPROJECT [EXTRA ...]``: the runtime dependencies and those of the named extras.

The lowest leg of ``make test-matrix`` installs with these as pip constraints, so the bounds in
``pyproject.toml`` are the versions that were tested.
"""

import re
import sys
import tomllib
from pathlib import Path

BOUND = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def main(pyproject: Path, extras: list[str]) -> None:
    """Write one ``name==version`` line for each runtime dependency of `pyproject` and of its `extras`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    dependencies = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    for requirement in dependencies:
        match = BOUND.match(requirement)
        if match is None:
            sys.exit(f"{pyproject}: dependency {requirement!r} has no `>=` lower bound to test.")
        print(f"{match[1]}=={match[2]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
