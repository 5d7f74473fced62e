"""epiformer: deep models of the DNA methylome and epigenome for the scverse ecosystem.

Use it as ``import epiformer as ef``: readers in :mod:`epiformer.io`, bundled and synthetic data in
:mod:`epiformer.datasets`, preprocessing in :mod:`epiformer.pp`, the model-driven tools in
:mod:`epiformer.tl`, plots in :mod:`epiformer.pl` and the networks in :mod:`epiformer.models`.
"""

from . import datasets, io, models, pl, pp, tl
from ._constants import Key
from ._utils import package_version as _package_version

__version__ = _package_version()

__all__ = ["Key", "datasets", "io", "models", "pl", "pp", "tl"]
