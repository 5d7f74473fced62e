"""Shared by `ef.tl.embed` and `ef.tl.impute`: vocabulary alignment, coverage, input checks, chunked rows, devices."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from anndata import AnnData

from epiformer._utils import get_matrix, read_columns, resolve_device
from epiformer._validation import check_betas, warn_all_missing_rows

if TYPE_CHECKING:
    import torch
    from mudata import MuData

    from epiformer.models import MethylGPT

#: Rows read from the data matrix at a time.
CHUNK_ROWS = 256


@dataclass
class ModelInputs:
    """The data matrix and where the model's CpGs are in it."""

    X: Any
    """The matrix (dense, sparse or backed)."""
    in_data: np.ndarray
    """Columns of `X` that are vocabulary CpGs."""
    in_vocab: np.ndarray
    """Their positions in the vocabulary's probe list."""
    coverage: dict[str, int | float]
    """`n_vocab`, `n_found`, `fraction_found`, `n_unused`."""
    n_observed: np.ndarray
    """Observed (non-NaN) vocabulary CpGs per sample."""
    all_missing: list[str]
    """Samples without any observed vocabulary CpG."""

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, betas)``: float32 values of the vocabulary CpGs, `CHUNK_ROWS` samples at a time."""
        for start in range(0, self.X.shape[0], CHUNK_ROWS):
            yield start, read_columns(self.X[start : start + CHUNK_ROWS], self.in_data)


def check_model(model: Any, batch_size: int) -> None:
    """Raise unless `model` is a MethylGPT and `batch_size` a positive integer."""
    from epiformer.models import MethylGPT

    if not isinstance(model, MethylGPT):
        msg = (
            f"`model` must be an `ef.models.MethylGPT`, got {type(model).__name__}; load one with "
            "`ef.models.MethylGPT.from_pretrained(path)`."
        )
        raise TypeError(msg)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        msg = f"`batch_size` must be a positive integer, got {batch_size!r}."
        raise ValueError(msg)


def prepare_inputs(adata: AnnData, model: MethylGPT, *, layer: str | None, var_key: str | None) -> ModelInputs:
    """Match the data to the model's vocabulary, check the coverage and the values; nothing is modified.

    Raises if no vocabulary CpG is in the data or values are not betas; warns below 50 % coverage and about
    samples with no observed vocabulary CpG.
    """
    X = get_matrix(adata, layer)
    vocab = model.vocab
    in_data, in_vocab = vocab.match(adata, var_key=var_key)
    n_vocab, n_found = len(vocab.probes), len(in_data)
    coverage = {
        "n_vocab": n_vocab,
        "n_found": n_found,
        "fraction_found": n_found / n_vocab,
        "n_unused": adata.n_vars - n_found,
    }
    hint = (
        "Check that the CpG IDs are Illumina probe IDs (pass `var_key=` if they are in a `var` column) and collapse "
        "EPICv2 suffixes (cg..._TC21) with `ef.pp.harmonize_probes`."
    )
    if n_found == 0:
        names = ", ".join(map(str, adata.var_names[:3]))
        msg = f"None of the model's {n_vocab:,} CpGs is in the data (CpG IDs such as {names}). {hint}"
        raise ValueError(msg)
    if n_found < 0.5 * n_vocab:
        warnings.warn(
            f"Only {n_found:,} of the model's {n_vocab:,} CpGs ({n_found / n_vocab:.1%}) are in the data; the others "
            f"are treated as missing. {hint}",
            UserWarning,
            stacklevel=3,
        )
    n_observed = np.empty(adata.n_obs, dtype=np.int64)
    inputs = ModelInputs(X, in_data, in_vocab, coverage, n_observed, [])
    for start, betas in inputs.chunks():
        check_betas(betas, what="The methylation matrix")
        n_observed[start : start + len(betas)] = (~np.isnan(betas)).sum(axis=1)
    has_value = np.where(n_observed > 0, 0.0, np.nan)[:, None]
    inputs.all_missing = warn_all_missing_rows(has_value, adata.obs_names, what="samples (among the model's CpGs)")
    return inputs


@contextmanager
def model_on(model: MethylGPT, device: str | torch.device) -> Iterator[torch.device]:
    """Run `model` in evaluation mode on `device` (bf16 autocast on CUDA), then restore its device and mode."""
    import torch

    target = resolve_device(device)
    home = next(model.parameters()).device
    training = model.training
    model.to(target).eval()
    try:
        with (
            torch.inference_mode(),
            torch.autocast(device_type=target.type, dtype=torch.bfloat16, enabled=target.type == "cuda"),
        ):
            yield target
    finally:
        model.to(home).train(training)


def copy_data(data: AnnData | MuData) -> AnnData | MuData:
    """An in-memory copy of `data` (a backed AnnData is loaded into memory)."""
    if isinstance(data, AnnData) and data.isbacked:
        return data.to_memory()
    return data.copy()


def provenance(model: MethylGPT, inputs: ModelInputs, **params: Any) -> dict[str, Any]:
    """The settings recorded in `uns`: checkpoint, model shape, coverage and the call's parameters."""
    checkpoint = model.checkpoint or {}
    return {
        "checkpoint": checkpoint.get("path", "none (weights not loaded from a file)"),
        "checkpoint_sha256": checkpoint.get("sha256", ""),
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "n_heads": model.n_heads,
        **inputs.coverage,
        **params,
    }
