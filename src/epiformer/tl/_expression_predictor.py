"""Methylation from expression + sequence: fit the predictor, predict methylation maps, evaluate against baselines."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from epiformer._annotations import check_sequences, pair_split
from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_params
from epiformer._sequence import normalize_chrom
from epiformer._utils import get_matrix, record_params, to_dense_float
from epiformer._validation import _first

if TYPE_CHECKING:
    from mudata import MuData

    from epiformer.models import ExpressionPredictor


def fit_expression_predictor(
    mdata: MuData,
    *,
    architecture: Literal["factorized", "levy_jurgenson"] = "factorized",
    rna_mod: str = Key.mod.rna,
    methyl_mod: str = Key.mod.methyl,
    rna_layer: str | None = None,
    methyl_layer: str | None = None,
    scaling: Literal["minmax", "standard"] | None = None,
    n_neighbors: int = 16,
    max_epochs: int = 50,
    lr: float | None = None,
    batch_size: int = 512,
    cpg_batch: int = 128,
    sample_batch: int = 64,
    early_stopping: bool = True,
    early_stopping_patience: int = 5,
    accelerator: str = "auto",
    devices: int | list[int] | str = "auto",
    random_state: int = 0,
    enable_progress_bar: bool = True,
    key_added: str = Key.uns.expression_predictor,
    **kwargs: Any,
) -> ExpressionPredictor:
    """Train a model predicting methylation from sequence, expression and CpG-gene distances.

    Needs, on the MuData: :func:`epiformer.pp.cpg_sequences`, :func:`epiformer.pp.cpg_gene_distances` and
    :func:`epiformer.pp.split_pairs`. The model learns on training CpGs x training samples, stops early on
    validation CpGs x validation samples and is judged on test CpGs x test samples
    (:func:`evaluate_methylation`), so a test pair shares neither its CpG nor its sample with training.

    Parameters
    ----------
    mdata
        Samples with an expression modality (log expression) and a methylation modality (betas).
    architecture
        ``"factorized"`` (default; attention over the genes near each CpG, per-CpG and per-sample parts
        computed once per block) or ``"levy_jurgenson"`` (the published network, computed per pair).
    rna_mod
        Expression modality.
    methyl_mod
        Methylation modality.
    rna_layer
        Layer of log expression (`None` = `.X`).
    methyl_layer
        Layer of betas (`None` = `.X`).
    scaling
        Expression scaling fit on training samples (``"minmax"`` to (10, 100) or ``"standard"``); default
        per architecture.
    n_neighbors
        Genes attended per CpG (``factorized``).
    max_epochs
        Passes over the training pairs.
    lr
        Adam learning rate; default 3e-3 for ``factorized`` and 1e-3 for ``levy_jurgenson``.
    batch_size
        Pairs per step (``levy_jurgenson``).
    cpg_batch
        CpGs per block.
    sample_batch
        Samples per block.
    early_stopping
        Stop when the validation MAE stops improving.
    early_stopping_patience
        Epochs without improvement before stopping.
    accelerator
        Lightning accelerator.
    devices
        Lightning devices.
    random_state
        Seed of weight initialisation and batch order.
    enable_progress_bar
        Show a progress bar.
    key_added
        `mdata.uns` key for the settings and the training history.
    **kwargs
        Network settings (e.g. ``n_heads``, ``hidden``) and :class:`scvi.train.Trainer` options.

    Returns
    -------
    The trained :class:`epiformer.models.ExpressionPredictor`. Writes `mdata.uns[key_added]` with `params`,
    `n_parameters` and `history` (per `epoch`, `train_loss` and `validation_loss`; see
    :func:`epiformer.pl.training_history`).
    """
    from epiformer.models import ExpressionPredictor
    from epiformer.models.expression_predictor._networks import n_parameters

    network_keys = {"filters", "kernel_size", "pool", "hidden", "n_heads", "key_dim", "gene_dim", "sample_dim"}
    network_keys |= {"attention_ratio", "seq_attention_width"}
    network = {k: kwargs.pop(k) for k in list(kwargs) if k in network_keys}
    ExpressionPredictor.setup_mudata(
        mdata,
        rna_layer=rna_layer,
        methyl_layer=methyl_layer,
        modalities={"rna_layer": rna_mod, "methyl_layer": methyl_mod},
    )
    model = ExpressionPredictor(
        mdata, architecture=architecture, scaling=scaling, n_neighbors=n_neighbors, random_state=random_state, **network
    )
    model.train(
        max_epochs=max_epochs,
        lr=lr,
        batch_size=batch_size,
        cpg_batch=cpg_batch,
        sample_batch=sample_batch,
        early_stopping=early_stopping,
        early_stopping_patience=early_stopping_patience,
        accelerator=accelerator,
        devices=devices,
        random_state=random_state,
        enable_progress_bar=enable_progress_bar,
        **kwargs,
    )
    logged = {
        name: frame.iloc[:, 0].astype(float).tolist()
        for name, frame in (model.history_ or {}).items()
        if name in ("train_loss", "validation_loss")
    }
    n_epochs = max((len(v) for v in logged.values()), default=0)
    history = {"epoch": list(range(n_epochs))}
    history.update({name: v + [float("nan")] * (n_epochs - len(v)) for name, v in logged.items()})
    mdata.uns[key_added] = {
        "params": {
            "architecture": architecture,
            "scaling": model.config_["scaling"],
            "n_neighbors": n_neighbors,
            "max_epochs": max_epochs,
            "lr": model.lr_,
            "random_state": random_state,
            "rna_mod": rna_mod,
            "methyl_mod": methyl_mod,
            "network": model.config_["network"],
        },
        "n_parameters": n_parameters(model.module),
        "history": history,
    }
    return model


def _aligned_expression(adata: AnnData, model: ExpressionPredictor, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Expression in the model's gene order and which model genes the data has (missing genes warned about)."""
    X = to_dense_float(get_matrix(adata, layer))
    position = pd.Index(adata.var_names).get_indexer(model.genes_)
    present = position >= 0
    if not present.any():
        msg = "None of the model's genes is in the data: check that `var_names` use the model's gene identifiers."
        raise ValueError(msg)
    if not present.all():
        missing = [g for g, ok in zip(model.genes_, present, strict=True) if not ok]
        warnings.warn(
            f"{len(missing)} of {len(model.genes_)} model genes are absent from the data and are set to 0 after "
            f"scaling (no contribution): {_first(missing)}.",
            UserWarning,
            stacklevel=3,
        )
    expr = np.zeros((adata.n_obs, len(model.genes_)), dtype=np.float32)
    expr[:, present] = X[:, position[present]]
    if np.isnan(expr).any():
        msg = "The expression matrix has NaN values; impute or drop them first."
        raise ValueError(msg)
    return expr, present


def _cpg_positions(model: ExpressionPredictor, cpgs) -> np.ndarray:
    if cpgs is None:
        return np.arange(len(model.cpgs_))
    position = pd.Index(model.cpgs_).get_indexer([str(c) for c in cpgs])
    if (position < 0).any():
        unknown = [str(c) for c, p in zip(cpgs, position, strict=True) if p < 0]
        msg = f"CpGs the model has no sequence and distances for: {_first(unknown)}."
        raise KeyError(msg)
    return position


@doc_params(layer=doc_layer, copy=doc_copy)
def predict_methylation(
    data,
    model: ExpressionPredictor,
    *,
    cpgs=None,
    layer: str | None = None,
    mod: str | None = None,
    key_added: str = Key.layers.predicted_methylation,
    cpg_batch: int = 256,
    sample_batch: int = 256,
    copy: bool = False,
):
    """Predict methylation of the model's CpGs from expression: of samples, single cells or spatial spots.

    The expression must be log expression on the scale of the model's training data (for
    :func:`epiformer.datasets.synthetic_multiome`, ``log1p`` of counts per 10,000, i.e.
    :func:`scanpy.pp.normalize_total` with ``target_sum=1e4`` then :func:`scanpy.pp.log1p`). Genes are matched
    by `var_names`; model genes missing from the data are reported and set to 0 after scaling. CpG sequences
    and distances come from the model, so expression-only data needs nothing else.

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` (predictions are written into its methylation modality) or an
        expression-only :class:`~anndata.AnnData` (cells or spots; a new AnnData of predictions is returned).
    model
        A trained :class:`epiformer.models.ExpressionPredictor`.
    cpgs
        Names of the CpGs to predict; default all the model's CpGs (with a MuData, those of its methylation
        modality that the model knows).
    {layer}
        Of the expression.
    mod
        With a MuData, the expression modality (default: the model's).
    key_added
        Layer written (MuData) or recorded in `uns` (AnnData).
    cpg_batch
        CpGs per block.
    sample_batch
        Samples per block.
    {copy}
        MuData only.

    Returns
    -------
    With a MuData: `None` (or the copy); writes `mod['methyl'].layers[key_added]` (float32 betas, NaN for
    CpGs the model does not know or samples without expression) and `mod['methyl'].uns[key_added]['params']`.
    With an AnnData: an AnnData of predicted betas, `obs` = the cells or spots (with their `obsm`, e.g.
    `obsm['spatial']`, and `uns['spatial']`, so :func:`scanpy.pl.spatial` draws the methylation map),
    `var` = the CpGs (`chrom`, `pos`), and `uns[key_added]['params']` (including `n_genes_missing`).
    """
    if isinstance(data, AnnData):
        positions = _cpg_positions(model, cpgs)
        expr, present = _aligned_expression(data, model, layer)
        betas = model.predict(expr, present=present, cpgs=positions, cpg_batch=cpg_batch, sample_batch=sample_batch)
        names = [model.cpgs_[i] for i in positions]
        out = AnnData(
            X=betas,
            obs=data.obs.copy(),
            var=pd.DataFrame(
                {
                    Key.var.chrom: [model.cpg_chrom_[i] for i in positions],
                    Key.var.pos: np.asarray([model.cpg_pos_[i] for i in positions], dtype=np.int64),
                },
                index=pd.Index(names),
            ),
            obsm={k: v.copy() for k, v in data.obsm.items()},
        )
        if Key.obsm.spatial in data.uns:
            out.uns[Key.obsm.spatial] = data.uns[Key.obsm.spatial]
        record_params(
            out,
            key_added,
            {"architecture": model.architecture, "layer": layer},
            n_genes_missing=int((~present).sum()),
        )
        return out

    rna_name = mod or model._rna_mod
    if rna_name not in data.mod or model._methyl_mod not in data.mod:
        msg = f"The MuData needs modalities {rna_name!r} and {model._methyl_mod!r}; it has {list(data.mod)}."
        raise KeyError(msg)
    methyl = data.mod[model._methyl_mod]
    wanted = methyl.var_names if cpgs is None else pd.Index([str(c) for c in cpgs])
    known = wanted[pd.Index(wanted).isin(model.cpgs_)]
    if not len(known):
        msg = "None of the CpGs is known to the model."
        raise ValueError(msg)
    rna = data.mod[rna_name]
    expr, present = _aligned_expression(rna, model, layer)
    rows = pd.Index(rna.obs_names).get_indexer(methyl.obs_names)
    betas = model.predict(
        expr[np.maximum(rows, 0)],
        present=present,
        cpgs=_cpg_positions(model, known),
        cpg_batch=cpg_batch,
        sample_batch=sample_batch,
    )
    full = np.full(methyl.shape, np.nan, dtype=np.float32)
    full[:, methyl.var_names.get_indexer(known)] = betas
    full[rows < 0] = np.nan
    data = data.copy() if copy else data
    methyl = data.mod[model._methyl_mod]
    methyl.layers[key_added] = full
    record_params(
        methyl,
        key_added,
        {"architecture": model.architecture, "layer": layer, "rna_mod": rna_name},
        n_genes_missing=int((~present).sum()),
        n_cpgs_predicted=len(known),
    )
    return data if copy else None


def columnwise_spearman(truth: np.ndarray, pred: np.ndarray, *, min_obs: int = 3) -> np.ndarray:
    """Spearman correlation of every column of `truth` with the same column of `pred`, ignoring NaN.

    A prediction constant over the column (no ranking information) scores 0; a constant truth, or fewer
    than `min_obs` observed values, gives NaN.
    """
    mask = ~np.isnan(truth) & ~np.isnan(pred)
    rank_t = pd.DataFrame(np.where(mask, truth, np.nan)).rank(axis=0).to_numpy()
    rank_p = pd.DataFrame(np.where(mask, pred, np.nan)).rank(axis=0).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ct = rank_t - np.nanmean(rank_t, axis=0)
        cp = rank_p - np.nanmean(rank_p, axis=0)
        var_t, var_p = np.nansum(ct**2, axis=0), np.nansum(cp**2, axis=0)
        rho = np.nansum(ct * cp, axis=0) / np.sqrt(var_t * var_p)
    rho = np.where(var_p == 0, 0.0, rho)
    return np.where((var_t == 0) | (mask.sum(axis=0) < min_obs), np.nan, rho)


def _scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    observed = ~np.isnan(truth) & ~np.isnan(pred)
    t, p = truth[observed], pred[observed]
    pooled = float(stats.spearmanr(t, p)[0]) if np.ptp(p) > 0 and np.ptp(t) > 0 else float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "n_pairs": int(observed.sum()),
            "mae": float(np.abs(t - p).mean()) if len(t) else float("nan"),
            "spearman": pooled,
            "per_cpg_spearman": float(np.nanmedian(columnwise_spearman(truth, pred))),
            "per_sample_spearman": float(np.nanmedian(columnwise_spearman(truth.T, pred.T))),
        }


def sequence_features(codes: np.ndarray, *, radii: tuple[int, ...] = (50, 200)) -> np.ndarray:
    """Dinucleotide counts (N excluded) within each radius of the window centre, plus the whole window."""
    flank = codes.shape[1] // 2
    pairs = codes[:, :-1].astype(np.int64) * 5 + codes[:, 1:]
    blocks = []
    for radius in (*radii, flank):
        window = pairs[:, max(flank - radius, 0) : flank + radius - 1]
        ids = window + 25 * np.arange(len(window))[:, None]
        counts = np.bincount(ids.ravel(), minlength=25 * len(window)).reshape(len(window), 25)
        keep = [a * 5 + b for a in range(4) for b in range(4)]
        blocks.append(counts[:, keep] / max(window.shape[1], 1))
    return np.hstack(blocks)


def _baselines(methyl: AnnData, truth: np.ndarray, rows: np.ndarray, cols: np.ndarray, train_s, train_c, seq_key):
    """Sequence-only and nearest-training-CpG-mean predictions for the evaluated block (constant per CpG)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        train_mean = np.nanmean(truth[np.ix_(train_s, train_c)], axis=0)
    usable = ~np.isnan(train_mean)
    out = {}
    codes = check_sequences(methyl, seq_key)
    features = sequence_features(codes)
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 6)))
    ridge.fit(features[train_c[usable]], train_mean[usable])
    out["sequence_only"] = np.clip(ridge.predict(features[cols]), 0, 1)
    chrom = np.array([normalize_chrom(c) for c in methyl.var[Key.var.chrom].astype(str)])
    pos = methyl.var[Key.var.pos].to_numpy(dtype=np.int64)
    nearest = np.full(len(cols), float(np.nanmean(train_mean)))
    ref = train_c[usable]
    for name in np.unique(chrom[cols]):
        here = ref[chrom[ref] == name]
        if not len(here):
            continue
        order = np.argsort(pos[here])
        sorted_pos, sorted_mean = pos[here][order], train_mean[usable][chrom[ref] == name][order]
        targets = np.flatnonzero(chrom[cols] == name)
        j = np.clip(np.searchsorted(sorted_pos, pos[cols][targets]), 1, len(sorted_pos)) - 1
        right = np.minimum(j + 1, len(sorted_pos) - 1)
        closer = np.abs(sorted_pos[right] - pos[cols][targets]) < np.abs(sorted_pos[j] - pos[cols][targets])
        nearest[targets] = sorted_mean[np.where(closer, right, j)]
    out["cpg_mean"] = nearest
    return {name: np.broadcast_to(values, (len(rows), len(cols))) for name, values in out.items()}


def evaluate_methylation(
    mdata,
    *,
    layer: str = Key.layers.predicted_methylation,
    split: str | None = "test",
    mod: str = Key.mod.methyl,
    truth_layer: str | None = None,
    split_key: str = Key.obs.split,
    groupby: str | None = None,
    baselines: bool = True,
    seq_key: str = Key.varm.seq_codes,
) -> pd.DataFrame:
    """Score predicted methylation on held-out CpGs x held-out samples, beside two baselines.

    Metrics: the pooled MAE and Spearman correlation over all pairs (the published metric, dominated by
    differences between CpGs), the median over CpGs of the across-sample Spearman correlation (does the
    prediction follow each CpG's variation between samples?) and the median over samples of the across-CpG
    Spearman correlation. Baselines, fit on training CpGs x training samples: ``sequence_only`` (ridge
    regression of each CpG's mean on dinucleotide counts around it) and ``cpg_mean`` (the mean of the
    nearest training CpG). Both are constant across samples, so their per-CpG correlation is 0.

    Parameters
    ----------
    mdata
        MuData (or methylation AnnData) with predictions in `layers[layer]` (see :func:`predict_methylation`).
    layer
        Layer of predictions.
    split
        Evaluate the CpGs and samples of this split; `None` uses all.
    mod
        Methylation modality.
    truth_layer
        Layer of observed betas (`None` = `.X`).
    split_key
        Column written by :func:`epiformer.pp.split_pairs`.
    groupby
        Optional categorical or boolean CpG `var` column: one block of rows per group (e.g. the synthetic
        data's `expression_driven`).
    baselines
        Add the ``sequence_only`` and ``cpg_mean`` baselines (need training CpGs and samples).
    seq_key
        `varm` key of the sequence codes (for the sequence-only baseline).

    Returns
    -------
    DataFrame indexed by predictor (the layer name and the baselines), or by (group, predictor) with
    `groupby`, with columns `n_pairs`, `mae`, `spearman`, `per_cpg_spearman`, `per_sample_spearman`.
    """
    methyl = mdata if isinstance(mdata, AnnData) else mdata.mod[mod]
    pred = to_dense_float(get_matrix(methyl, layer))
    truth = to_dense_float(get_matrix(methyl, truth_layer))
    sample_split, cpg_split = pair_split(mdata, split_key=split_key, mod=None if isinstance(mdata, AnnData) else mod)
    rows = np.arange(methyl.n_obs) if split is None else np.flatnonzero(sample_split == split)
    cols = np.arange(methyl.n_vars) if split is None else np.flatnonzero(cpg_split == split)
    if not len(rows) or not len(cols):
        msg = f"No samples or CpGs in split {split!r}."
        raise ValueError(msg)
    predictions = {layer: pred[np.ix_(rows, cols)]}
    if baselines:
        train_s, train_c = np.flatnonzero(sample_split == "train"), np.flatnonzero(cpg_split == "train")
        predictions.update(_baselines(methyl, truth, rows, cols, train_s, train_c, seq_key))
    block = truth[np.ix_(rows, cols)]
    if groupby is None:
        return pd.DataFrame({name: _scores(block, p) for name, p in predictions.items()}).T
    if groupby not in methyl.var:
        msg = f"`groupby={groupby!r}` is not a column of the CpG `var`."
        raise KeyError(msg)
    labels = methyl.var[groupby].to_numpy()[cols]
    table = {
        (label, name): _scores(block[:, labels == label], p[:, labels == label])
        for label in pd.unique(labels)
        for name, p in predictions.items()
    }
    return pd.DataFrame(table).T.rename_axis([groupby, "predictor"])
