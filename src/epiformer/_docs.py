"""Shared parameter text for numpydoc docstrings (a Python 3.11-safe version of scanpy's ``_doc_params``)."""

from __future__ import annotations

from collections.abc import Callable
from inspect import cleandoc
from typing import TypeVar

T = TypeVar("T", bound=Callable)

doc_adata = """\
adata
    Annotated data matrix, observations (samples, cells, spots) x variables (CpGs, genes)."""

doc_layer = """\
layer
    Layer to read the matrix from; `None` uses `.X`."""

doc_copy = """\
copy
    Return a modified copy instead of writing to `adata` in place."""

doc_data = """\
data
    Samples x CpGs of beta values: an :class:`~anndata.AnnData` (in memory or backed), or a :class:`~mudata.MuData`
    holding one."""

doc_mod_methyl = """\
mod
    With a :class:`~mudata.MuData`, the modality to use (default ``"methyl"``); ignored for an
    :class:`~anndata.AnnData`."""

doc_mod = """\
mod
    With a :class:`~mudata.MuData`, the modality to use; ignored for an :class:`~anndata.AnnData`."""

doc_var_key = """\
var_key
    Column of `var` holding the probe IDs; `None` uses `var_names`."""

doc_model_run = """\
batch_size
    Samples per forward pass.
device
    ``"auto"`` (CUDA, then MPS, then CPU), or any :class:`torch.device` specification; the model is moved there
    for the call and back afterwards."""

doc_missing = """\
missing
    How vocabulary CpGs absent from the data enter: ``"mask"`` leaves them out (never attended, as in pretraining),
    ``"legacy"`` gives them value -2 and attends them, as the authors' tutorials do."""

doc_methylgpt_run = {
    "data": doc_data,
    "layer": doc_layer,
    "copy": doc_copy,
    "mod": doc_mod_methyl,
    "var_key": doc_var_key,
    "model_run": doc_model_run,
    "missing": doc_missing,
}
"""Parameter text shared by the tools that run MethylGPT over samples (`embed`, `impute`, `attention`)."""

doc_random_state = """\
random_state
    Seed (or :class:`numpy.random.Generator`) for everything random in the call."""


def doc_params(**kwds: str) -> Callable[[T], T]:
    """Fill ``{name}`` placeholders of a docstring with shared parameter text (braces elsewhere are doubled)."""

    def dec(obj: T) -> T:
        obj.__doc__ = cleandoc(obj.__doc__ or "").format_map(kwds)
        return obj

    return dec
