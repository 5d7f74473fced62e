"""Train / validation / test assignment of samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_copy, doc_params, doc_random_state
from epiformer._utils import as_generator, record_params

SPLITS = ("train", "val", "test")


@doc_params(adata=doc_adata, random_state=doc_random_state, copy=doc_copy)
def split_samples(
    adata: AnnData,
    *,
    test_size: float = 0.2,
    val_size: float = 0.1,
    stratify: str | None = None,
    random_state: int | np.random.Generator | None = 0,
    key_added: str = Key.obs.split,
    copy: bool = False,
) -> AnnData | None:
    """Assign every sample to ``"train"``, ``"val"`` or ``"test"``.

    Fine-tuned models and baselines train on the same ``"train"`` samples, stop early on ``"val"`` and are
    compared on ``"test"``, so their figures are put side by side on the same held-out samples.

    Parameters
    ----------
    {adata}
    test_size
        Fraction of samples held out for testing.
    val_size
        Fraction of samples used for validation (early stopping, model selection).
    stratify
        Categorical `obs` column whose proportions each split keeps (e.g. a disease label); missing values
        form their own stratum.
    {random_state}
    key_added
        `obs` column written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy; writes `obs[key_added]` (categorical ``train`` /
    ``val`` / ``test``) and `uns[key_added]['params']`.
    """
    if not (0 <= test_size < 1 and 0 <= val_size < 1 and test_size + val_size < 1):
        msg = f"`test_size` ({test_size}) and `val_size` ({val_size}) must be in [0, 1) and sum to less than 1."
        raise ValueError(msg)
    if stratify is not None and stratify not in adata.obs:
        msg = f"`stratify={stratify!r}` is not a column of `adata.obs`."
        raise KeyError(msg)
    rng = as_generator(random_state)
    labels = (
        adata.obs[stratify].astype(str).fillna("nan").to_numpy()
        if stratify is not None
        else np.zeros(adata.n_obs, dtype=int)
    )
    split = np.empty(adata.n_obs, dtype=object)
    for label in pd.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_size * len(rows)))
        n_val = int(round(val_size * len(rows)))
        split[rows[:n_test]] = "test"
        split[rows[n_test : n_test + n_val]] = "val"
        split[rows[n_test + n_val :]] = "train"
    adata = adata.copy() if copy else adata
    adata.obs[key_added] = pd.Categorical(split, categories=list(SPLITS))
    record_params(adata, key_added, {"test_size": test_size, "val_size": val_size, "stratify": stratify})
    return adata if copy else None
