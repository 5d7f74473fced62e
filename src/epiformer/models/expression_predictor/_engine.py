"""What the tools need around an expression predictor, without torch (the model imports it when it predicts).

Expression in the model's gene order, CpG look-up, predictions laid out for AnnData / MuData, split blocks,
scores and baselines.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse, stats

from epiformer._annotations import check_sequences, pair_split
from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._sequence import normalize_chrom
from epiformer._utils import get_matrix, progress_bar, to_dense_float
from epiformer._validation import first_items

if TYPE_CHECKING:
    from epiformer.models.expression_predictor._model import ExpressionPredictor


def check_predictor(model: Any) -> None:
    """Raise a :class:`TypeError` unless `model` is an :class:`ExpressionPredictor`."""
    from epiformer.models._base import check_model
    from epiformer.models.expression_predictor._model import ExpressionPredictor

    check_model(model, ExpressionPredictor, how="train one with `ef.tl.fit_expression_predictor`")


def in_model_order(X, var_names: Sequence[str], genes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Dense float32 `X` (samples x `var_names`) reordered to `genes`; absent genes are 0, and the mask of present ones."""
    position = pd.Index(var_names).get_indexer(list(genes))
    present = position >= 0
    expr = np.zeros((X.shape[0], len(genes)), dtype=np.float32)
    if present.any():
        expr[:, present] = to_dense_float(X)[:, position[present]]
    return expr, present


def gene_positions(var_names: Sequence[str], model: ExpressionPredictor) -> tuple[np.ndarray, np.ndarray]:
    """Column of every model gene in `var_names` (-1 when absent) and the mask of present ones; absent genes warned about."""
    position = pd.Index(var_names).get_indexer(list(model.genes))
    present = position >= 0
    if not present.any():
        msg = "None of the model's genes is in the data: check that `var_names` use the model's gene identifiers."
        raise ValueError(msg)
    if not present.all():
        missing = [g for g, ok in zip(model.genes, present, strict=True) if not ok]
        warn(
            f"{len(missing)} of {len(model.genes)} model genes are absent from the data and are set to 0 after "
            f"scaling (no contribution): {first_items(missing)}.",
            UserWarning,
        )
    return position, present


def _check_finite(expr: np.ndarray) -> np.ndarray:
    if np.isnan(expr).any():
        msg = "The expression matrix has NaN values; impute or drop them first."
        raise ValueError(msg)
    return expr


def aligned_expression(adata: AnnData, model: ExpressionPredictor, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Expression in the model's gene order and which model genes the data has (absent genes are warned about)."""
    X = get_matrix(adata, layer)
    gene_positions(adata.var_names, model)
    expr, present = in_model_order(X, adata.var_names, model.genes)
    return _check_finite(expr), present


def _take_rows(X, rows: np.ndarray | slice):
    """Rows of a dense, sparse or backed matrix (backed datasets are read at sorted unique positions)."""
    if isinstance(rows, slice) or isinstance(X, np.ndarray) or sparse.issparse(X):
        return X[rows]
    unique, inverse = np.unique(rows, return_inverse=True)
    block = X[unique]
    return block[inverse]


def expression_chunks(
    X, position: np.ndarray, *, rows: np.ndarray | None = None, chunk: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, expression)`` of `chunk` rows at a time, dense float32 in the model's gene order (absent genes 0).

    `X` (dense, sparse or backed) is never densified as a whole: each chunk's rows (`rows` positions, all when
    `None`) are read, the model's genes selected while still sparse, then made dense. A CSC or COO matrix is
    converted to CSR once (a sparse copy) so that row chunks are cheap.
    """
    if sparse.issparse(X) and X.format != "csr":
        X = X.tocsr()
    present = position >= 0
    columns = position[present]
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = _take_rows(X, slice(start, stop) if rows is None else rows[start:stop])
        expr = np.zeros((stop - start, len(position)), dtype=np.float32)
        if present.any():
            expr[:, present] = to_dense_float(
                block[:, columns] if sparse.issparse(block) else np.asarray(block)[:, columns]
            )
        yield start, _check_finite(expr)


def stream_predictions(
    X,
    model: ExpressionPredictor,
    position: np.ndarray,
    cpgs: np.ndarray,
    write: Callable[[int, np.ndarray], None],
    *,
    rows: np.ndarray | None = None,
    cpg_batch: int = 256,
    sample_batch: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> int:
    """Predict the CpGs `cpgs` for the rows of `X`, `sample_batch` rows at a time, handing each chunk to `write`.

    Each chunk is read and densified on its own (:func:`expression_chunks`), scaled and predicted in blocks of
    `cpg_batch` CpGs, so memory holds one chunk, never the whole expression or the whole result (unless
    `write` keeps it). The blocks are those of :meth:`ExpressionPredictor.predict` with the same batches, so
    the results are the same. Returns the number of NaN or infinite predictions.
    """
    from epiformer._validation import count_nonfinite
    from epiformer.models._base import on_device

    check_batches(cpg_batch=cpg_batch, sample_batch=sample_batch)
    present = position >= 0
    n = X.shape[0] if rows is None else len(rows)
    nonfinite = 0
    with (
        on_device(model.network, device) as target,
        progress_bar(total=n, desc="methylation prediction", unit="row", disable=not progress) as bar,
    ):
        for start, expr in expression_chunks(X, position, rows=rows, chunk=sample_batch):
            pred = model.predict(
                expr, present=present, cpgs=cpgs, cpg_batch=cpg_batch, sample_batch=sample_batch, device=target
            )
            nonfinite += count_nonfinite(pred)
            write(start, pred)
            bar.update(len(pred))
    return nonfinite


def check_batches(**batches: Any) -> None:
    """Raise a :class:`ValueError` unless every batch size is a positive integer."""
    for name, value in batches.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            msg = f"`{name}` must be a positive integer, got {value!r}."
            raise ValueError(msg)


def cpg_positions(model: ExpressionPredictor, cpgs: Sequence[str] | None) -> np.ndarray:
    """Positions of the CpG names `cpgs` in the model's CpG table (all when `None`); unknown names raise."""
    if cpgs is None:
        return np.arange(len(model.cpgs))
    names = [str(c) for c in cpgs]
    position = pd.Index(model.cpgs).get_indexer(names)
    if (position < 0).any():
        unknown = [c for c, p in zip(names, position, strict=True) if p < 0]
        msg = f"CpGs the model has no sequence and distances for: {first_items(unknown)}."
        raise KeyError(msg)
    return position


def cpg_coordinates(model: ExpressionPredictor, positions: np.ndarray) -> pd.DataFrame:
    """`chrom` and `pos` of the model's CpGs at `positions`, indexed by name."""
    return pd.DataFrame(
        {
            Key.var.chrom: [model.cpg_chrom[i] for i in positions],
            Key.var.pos: np.asarray([model.cpg_pos[i] for i in positions], dtype=np.int64),
        },
        index=pd.Index([model.cpgs[i] for i in positions]),
    )


def predict_expression_only(
    adata: AnnData,
    model: ExpressionPredictor,
    *,
    cpgs: Sequence[str] | None,
    layer: str | None,
    out: str | PathLike | None = None,
    **predict: Any,
) -> tuple[pd.DataFrame | None, pd.DataFrame, int, int]:
    """Predicted betas of the cells or spots of `adata`, streamed in row chunks.

    Returns the betas (a DataFrame cells x CpGs; `None` when written to the zarr store `out` instead, see
    :func:`write_betas_zarr`), the CpGs' coordinates, the number of model genes missing and the number of NaN or
    infinite predictions.
    """
    check_batches(cpg_batch=predict.get("cpg_batch", 256), sample_batch=predict.get("sample_batch", 256))
    if out is not None:
        check_zarr_target(out)
    positions = cpg_positions(model, cpgs)
    X = get_matrix(adata, layer)
    position, present = gene_positions(adata.var_names, model)
    coords = cpg_coordinates(model, positions)
    if out is not None:
        nonfinite = write_betas_zarr(
            out, X, model, position, positions, obs_names=adata.obs_names, coords=coords, **predict
        )
        return None, coords, int((~present).sum()), nonfinite
    betas = np.empty((X.shape[0], len(positions)), dtype=np.float32)

    def write(start: int, pred: np.ndarray) -> None:
        betas[start : start + len(pred)] = pred

    nonfinite = stream_predictions(X, model, position, positions, write, **predict)
    frame = pd.DataFrame(betas, index=adata.obs_names.copy(), columns=coords.index.copy(), copy=False)
    return frame, coords, int((~present).sum()), nonfinite


def check_zarr_target(out: str | PathLike) -> Path:
    """The path of a new zarr store: refused if something exists there or its folder does not."""
    path = Path(out)
    if path.exists():
        msg = f"{str(path)!r} exists; choose a new path for the predictions (nothing is overwritten)."
        raise FileExistsError(msg)
    if not path.parent.is_dir():
        msg = f"The folder of {str(path)!r} does not exist."
        raise FileNotFoundError(msg)
    return path


def write_betas_zarr(
    out: str | PathLike,
    X,
    model: ExpressionPredictor,
    position: np.ndarray,
    positions: np.ndarray,
    *,
    obs_names: pd.Index,
    coords: pd.DataFrame,
    **predict: Any,
) -> int:
    """Write the predictions as an AnnData zarr store at `out` (cells or spots x CpGs), chunk by chunk.

    `X` of the store is float32 betas in zarr chunks of `sample_batch` rows (and at most 4,096 CpGs), `obs`
    holds the row names and `var` the CpGs' `chrom` and `pos`: :func:`anndata.read_zarr` reads it, and
    ``zarr.open_group(out, mode="r")["X"]`` slices it without loading it. The store is removed if the
    prediction fails. Returns the number of NaN or infinite predictions.
    """
    import zarr

    path = check_zarr_target(out)
    sample_batch = int(predict.get("sample_batch", 256))
    n_rows, n_cols = X.shape[0], len(positions)
    try:
        with warnings.catch_warnings():  # anndata's note on its default zarr format (its setting decides)
            warnings.filterwarnings("ignore", message="Writing zarr v2 data", category=UserWarning)
            AnnData(obs=pd.DataFrame(index=pd.Index(obs_names, dtype=str)), var=coords).write_zarr(path)
        group = zarr.open_group(str(path), mode="r+")
        shape, chunks = (n_rows, n_cols), (max(1, min(sample_batch, n_rows)), max(1, min(n_cols, 4096)))
        # overwrite: some anndata releases (0.12.0) write an empty `X` for an AnnData without one
        options = {"shape": shape, "chunks": chunks, "dtype": "float32", "fill_value": np.nan, "overwrite": True}
        if hasattr(group, "create_array"):  # zarr >= 3
            array = group.create_array("X", **options)
        else:  # zarr 2
            array = group.create_dataset("X", **options)
        array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})

        def write(start: int, pred: np.ndarray) -> None:
            array[start : start + len(pred)] = pred

        nonfinite = stream_predictions(X, model, position, positions, write, **predict)
        zarr.consolidate_metadata(str(path))  # anndata opens consolidated metadata: list `X` there
        return nonfinite
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def predict_paired(
    mdata: Any,
    model: ExpressionPredictor,
    *,
    cpgs: Sequence[str] | None,
    layer: str | None,
    mod: str | None,
    **predict: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted betas for the methylation modality of `mdata` (NaN for unknown CpGs, samples without expression)."""
    check_batches(cpg_batch=predict.get("cpg_batch", 256), sample_batch=predict.get("sample_batch", 256))
    rna_name = mod or model.rna_mod
    if rna_name not in mdata.mod or model.methyl_mod not in mdata.mod:
        msg = f"The MuData needs modalities {rna_name!r} and {model.methyl_mod!r}; it has {list(mdata.mod)}."
        raise KeyError(msg)
    methyl, rna = mdata.mod[model.methyl_mod], mdata.mod[rna_name]
    wanted = methyl.var_names if cpgs is None else pd.Index([str(c) for c in cpgs])
    known = wanted[wanted.isin(model.cpgs)]
    if not len(known):
        msg = "None of the CpGs is known to the model."
        raise ValueError(msg)
    X = get_matrix(rna, layer)
    position, present = gene_positions(rna.var_names, model)
    rows = pd.Index(rna.obs_names).get_indexer(methyl.obs_names)
    full = np.full(methyl.shape, np.nan, dtype=np.float32)
    columns = methyl.var_names.get_indexer(known)

    def write(start: int, pred: np.ndarray) -> None:
        full[start : start + len(pred), columns] = pred

    stream_predictions(X, model, position, cpg_positions(model, known), write, rows=np.maximum(rows, 0), **predict)
    full[rows < 0] = np.nan
    n_nonfinite = int((~np.isfinite(full[np.ix_(rows >= 0, columns)])).sum())
    info = {"rna_mod": rna_name, "n_genes_missing": int((~present).sum()), "n_cpgs_predicted": len(known)}
    return full, {**info, "n_nonfinite": n_nonfinite}


def split_block(
    data: Any, methyl: AnnData, *, split: str | None, split_key: str, mod: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns of `methyl` in `split` (all when `None`), and the sample and CpG split labels."""
    sample_split, cpg_split = pair_split(data, split_key=split_key, mod=mod)
    rows = np.arange(methyl.n_obs) if split is None else np.flatnonzero(sample_split == split)
    cols = np.arange(methyl.n_vars) if split is None else np.flatnonzero(cpg_split == split)
    return rows, cols, sample_split, cpg_split


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


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """`n_pairs`, `mae`, pooled `spearman`, and the medians of the per-CpG and per-sample Spearman correlations."""
    observed = ~np.isnan(truth) & ~np.isnan(pred)
    t, p = truth[observed], pred[observed]
    pooled = float(stats.spearmanr(t, p)[0]) if len(t) and np.ptp(p) > 0 and np.ptp(t) > 0 else float("nan")
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


def baselines(
    methyl: AnnData,
    truth: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    train_s: np.ndarray,
    train_c: np.ndarray,
    *,
    seq_key: str = Key.varm.seq_codes,
) -> dict[str, np.ndarray]:
    """Sequence-only and nearest-training-CpG-mean predictions for the block `rows` x `cols` (constant per CpG).

    ``sequence_only`` is a ridge regression of each training CpG's mean (over training samples) on
    :func:`sequence_features`; ``cpg_mean`` is the mean of the nearest training CpG on the same chromosome.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        train_mean = np.nanmean(truth[np.ix_(train_s, train_c)], axis=0)
    usable = ~np.isnan(train_mean)
    out = {}
    features = sequence_features(check_sequences(methyl, seq_key))
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


def score_table(
    truth: np.ndarray, predictions: dict[str, np.ndarray], labels: np.ndarray | None = None, *, groupby: str = "group"
) -> pd.DataFrame:
    """:func:`scores` of every prediction (rows: predictors), or of every (label, predictor) with CpG `labels`."""
    if labels is None:
        return pd.DataFrame({name: scores(truth, p) for name, p in predictions.items()}).T
    table = {
        (label, name): scores(truth[:, labels == label], p[:, labels == label])
        for label in pd.unique(labels)
        for name, p in predictions.items()
    }
    return pd.DataFrame(table).T.rename_axis([groupby, "predictor"])


def log_normalize(counts, target_sum: float) -> np.ndarray:
    """``log1p(counts / total * target_sum)`` per row (rows without counts stay 0), dense."""
    dense = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    totals = dense.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(dense, totals, out=np.zeros_like(dense, dtype=np.float64), where=totals > 0) * target_sum)


def dilution_scores(
    model: ExpressionPredictor,
    rna: AnnData,
    methyl: AnnData,
    counts: Any,
    *,
    levels: Sequence[int],
    n_iter: int,
    method: str,
    target_sum: float,
    random_state: int,
    device: Any,
    progress: bool,
) -> tuple[pd.DataFrame, dict[str, float], dict[str, int]]:
    """Scores of `model` on the samples x CpGs of `methyl` from expression diluted to each retention level.

    `rna` holds the same samples' (undiluted) expression and `counts` the matrix to dilute (``pp.dilute``,
    `n_iter` seeded draws per level), re-normalised with :func:`log_normalize` unless ``method="legacy"``.
    Returns the tidy table (one row per level and iteration), the undiluted scores and, per level (as a
    string), the samples with fewer molecules than the level (kept as they are by ``"hypergeometric"``).
    """
    from epiformer.pp import dilute

    cpg_pos = cpg_positions(model, methyl.var_names)
    truth = to_dense_float(get_matrix(methyl, model.methyl_layer))

    def score(values) -> dict[str, float]:
        expr, present = in_model_order(values, rna.var_names, model.genes)
        return scores(truth, model.predict(expr, present=present, cpgs=cpg_pos, device=device))

    expr, present = aligned_expression(rna, model, model.rna_layer)
    undiluted = scores(truth, model.predict(expr, present=present, cpgs=cpg_pos, device=device))
    work = AnnData(counts)  # a scratch object: `dilute` writes its layer here, never into the caller's data
    records, short = [], {}
    with progress_bar(total=len(levels) * n_iter, desc="dilution", leave=False, disable=not progress) as bar:
        for level in levels:
            for iteration in range(n_iter):
                with warnings.catch_warnings():  # the caller summarises the samples below a level once
                    warnings.filterwarnings("ignore", message=".*molecules and are kept as they are")
                    dilute(work, level, method=method, layer=None, random_state=random_state + iteration)
                short[str(level)] = int(work.uns[Key.layers.diluted].get("n_below_retention", 0))
                diluted = work.layers[Key.layers.diluted]
                values = diluted if method == "legacy" else log_normalize(diluted, target_sum)
                kept = float(np.mean(np.asarray((diluted != 0).sum(axis=1)).ravel()))
                records.append({"retention": level, "iteration": iteration, "n_genes_kept": kept, **score(values)})
                bar.update()
    return pd.DataFrame.from_records(records), undiluted, short
