"""Plots for judging results by eye: imputation, vocabulary coverage, predicted methylation, variant effects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_mod_methyl, doc_params, doc_var_key
from epiformer._metrics import regression_metrics
from epiformer._utils import get_matrix, select_modality, to_dense_float
from epiformer._validation import first_items
from epiformer.pl._utils import axes_or_new, row_of_axes
from epiformer.pp import vocab_coverage as coverage_report
from epiformer.tl import evaluate_methylation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _skipped(n: int) -> str:
    """``"; 3 NaN skipped"`` for the title, or nothing when nothing was skipped."""
    return f"; {n:,} NaN skipped" if n else ""


def _density(ax: Axes, x: np.ndarray, y: np.ndarray, *, gridsize: int, label: str) -> None:
    """Hexbin of `y` against `x` on the unit square (log colour scale, a colourbar) with the identity line."""
    cells = ax.hexbin(x, y, gridsize=gridsize, extent=(0, 1, 0, 1), bins="log", mincnt=1, cmap="viridis")
    ax.figure.colorbar(cells, ax=ax, label=label)
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def _held_out(adata: AnnData, mask: np.ndarray | None, layer: str) -> np.ndarray:
    """The held-out entries: `mask`, or the values missing in the input `ef.tl.impute` read (recorded in `uns`)."""
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != adata.shape:
            msg = f"`mask` has shape {mask.shape}; it must match the data, {adata.shape}."
            raise ValueError(msg)
        return mask
    uns_key = Key.uns.imputed if layer == Key.layers.imputed else layer
    if uns_key not in adata.uns or "params" not in adata.uns[uns_key]:
        msg = f"No `uns[{uns_key!r}]` from `ef.tl.impute`: pass `mask=` (True where values were held out)."
        raise KeyError(msg)
    source = adata.uns[uns_key]["params"].get("layer")
    return np.isnan(to_dense_float(get_matrix(adata, source)))


@doc_params(mod=doc_mod_methyl)
def imputation(
    data: AnnData | MuData,
    *,
    truth: str | np.ndarray,
    mask: np.ndarray | None = None,
    layer: str = Key.layers.imputed,
    mod: str | None = None,
    gridsize: int = 40,
    ax: Axes | None = None,
) -> Axes:
    """Imputed against held-out beta values, with the identity line, the MAE and the Pearson correlation.

    Hide known values (set them to NaN), run :func:`epiformer.tl.impute`, and pass the values you hid as
    `truth`. Held-out entries whose truth or imputed value is NaN (CpGs outside the model's vocabulary) are
    skipped and counted in the title.

    Parameters
    ----------
    data
        AnnData (or MuData) whose `layers[layer]` was written by :func:`epiformer.tl.impute`.
    truth
        The held-out values: a layer name, or an array of the data's shape.
    mask
        True where values were held out; `None` takes the values missing in the matrix `ef.tl.impute` read
        (its `uns[...]['params']['layer']`).
    layer
        Layer of imputed values (the `key_added` of :func:`epiformer.tl.impute`).
    {mod}
    gridsize
        Hexagons across the unit square.
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    adata = select_modality(data, mod, default=Key.mod.methyl)
    imputed = to_dense_float(get_matrix(adata, layer))
    true = to_dense_float(get_matrix(adata, truth) if isinstance(truth, str) else truth)
    if true.shape != adata.shape:
        msg = f"`truth` has shape {true.shape}; it must match the data, {adata.shape}."
        raise ValueError(msg)
    held = _held_out(adata, mask, layer)
    x, y = true[held], imputed[held]
    usable = ~np.isnan(x) & ~np.isnan(y)
    if usable.sum() < 2:
        msg = f"Fewer than two held-out values have both a truth and an imputed value in `layers[{layer!r}]`."
        raise ValueError(msg)
    scores = regression_metrics(x[usable], y[usable])
    ax = axes_or_new(ax, figsize=(5, 4))
    _density(ax, x[usable], y[usable], gridsize=gridsize, label="held-out values per hexagon")
    ax.set_xlabel("held-out beta value")
    ax.set_ylabel("imputed beta value")
    ax.set_title(
        f"imputation: MAE {scores['mae']:.3f}, Pearson r {scores['pearson']:.3f}\n"
        f"(n = {int(usable.sum()):,}{_skipped(int((~usable).sum()))})",
        fontsize="medium",
    )
    return ax


@doc_params(var_key=doc_var_key, mod=doc_mod_methyl, layer=doc_layer)
def vocab_coverage(
    data: AnnData | MuData | Mapping[str, Any],
    model: Any = None,
    *,
    var_key: str | None = None,
    mod: str | None = None,
    layer: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Fraction of a model's vocabulary CpGs each sample measures, sorted, with the data's overall coverage marked.

    One bar per sample (lowest first); the dashed line is the fraction of the vocabulary the data holds at all
    (`fraction_found`), the most any sample can reach. Samples with a NaN fraction are skipped and counted in
    the title.

    Parameters
    ----------
    data
        The report of :func:`epiformer.pp.vocab_coverage`, or the data to compute it on (then `model` is needed).
    model
        With data: the model, vocabulary or probe IDs to count, as for :func:`epiformer.pp.vocab_coverage`.
    {var_key}
    {mod}
    {layer}
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    if isinstance(data, Mapping):
        report = data
    elif model is None:
        msg = "Pass the `model` (or its vocabulary) whose coverage to plot, or the report of `ef.pp.vocab_coverage`."
        raise ValueError(msg)
    else:
        report = coverage_report(data, model, var_key=var_key, mod=mod, layer=layer)
    missing = [k for k in ("per_sample", "fraction_found", "n_vocab") if k not in report]
    if missing:
        msg = f"The coverage report lacks {missing}; pass the dict returned by `ef.pp.vocab_coverage`."
        raise KeyError(msg)
    fractions = report["per_sample"]["fraction_vocab_observed"].astype(float).dropna().sort_values()
    n_nan = len(report["per_sample"]) - len(fractions)
    ax = axes_or_new(ax, figsize=(5, 4))
    positions = np.arange(len(fractions))
    ax.bar(positions, 100 * fractions.to_numpy(), color="0.4", label="observed in the sample")
    overall = 100 * float(report["fraction_found"])
    ax.axhline(overall, color="tab:red", ls="--", lw=1, label=f"in the data: {overall:.1f}%")
    if len(fractions) <= 40:
        ax.set_xticks(positions, [str(s) for s in fractions.index], rotation=90, fontsize="x-small")
    ax.set_xlabel("sample (sorted by coverage)")
    ax.set_ylabel("vocabulary CpGs observed (%)")
    ax.set_ylim(0, 120)
    ax.set_yticks(np.arange(0, 101, 20))
    ax.legend(frameon=False, fontsize="small", loc="upper left", ncols=2)
    ax.set_title(f"coverage of {int(report['n_vocab']):,} vocabulary CpGs (n = {len(fractions)}{_skipped(n_nan)})")
    return ax


def _correlation_histogram(ax: Axes, rho: np.ndarray, labels: np.ndarray | None, *, groupby: str | None) -> None:
    """Histogram of per-CpG correlations (one step outline per group), with each median marked."""
    edges = np.linspace(-1, 1, 41)
    if labels is None:
        groups = [("all CpGs", np.ones(len(rho), dtype=bool))]
    else:
        groups = [(f"{groupby} = {g}", labels == g) for g in pd.unique(labels)]
    for k, (name, rows) in enumerate(groups):
        values = rho[rows & ~np.isnan(rho)]
        ax.hist(values, bins=edges, histtype="step", lw=1.5, color=f"C{k}", label=f"{name} (n = {len(values):,})")
        if len(values):
            ax.axvline(float(np.median(values)), color=f"C{k}", ls="--", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Spearman correlation across samples (per CpG)")
    ax.set_ylabel("CpGs")
    ax.legend(frameon=False, fontsize="small", loc="upper left")


def methylation_prediction(
    data: AnnData | MuData,
    *,
    layer: str = Key.layers.predicted_methylation,
    truth_layer: str | None = None,
    split: str | None = "test",
    split_key: str = Key.obs.split,
    mod: str | None = None,
    groupby: str | None = None,
    gridsize: int = 40,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Predicted against observed methylation, and the histogram of the per-CpG correlation across samples.

    The left panel pools every (sample, CpG) pair of the split, titled with the pooled Spearman correlation and
    the MAE of :func:`epiformer.tl.evaluate_methylation`; the right panel shows, for every CpG, the Spearman
    correlation of prediction and observation across the split's samples (dashed: the median). Pairs with a NaN
    observation or prediction, and CpGs without a correlation (constant, fewer than 3 values), are skipped and
    counted in the titles.

    Parameters
    ----------
    data
        MuData (or methylation AnnData) with predictions in `layers[layer]` (see
        :func:`epiformer.tl.predict_methylation`).
    layer
        Layer of predictions.
    truth_layer
        Layer of observed betas (`None` = `.X`).
    split
        Plot the CpGs and samples of this split; `None` uses all.
    split_key
        Column written by :func:`epiformer.pp.split_pairs`.
    mod
        With a MuData, the methylation modality (default ``"methyl"``).
    groupby
        Optional categorical or boolean CpG `var` column: one histogram per group (e.g. `expression_driven`).
    gridsize
        Hexagons across the unit square of the left panel.
    axes
        Two Axes to draw into (left, right); a new figure is made when `None`.

    Returns
    -------
    The Figure drawn into (its two Axes are ``fig.axes[:2]`` when it was made here).
    """
    from epiformer.models.expression_predictor import columnwise_spearman, split_block

    methyl = select_modality(data, mod, default=Key.mod.methyl)
    if groupby is not None and groupby not in methyl.var:
        msg = f"`groupby={groupby!r}` is not a column of the CpG `var`."
        raise KeyError(msg)
    scores = evaluate_methylation(
        data, layer=layer, split=split, mod=mod, truth_layer=truth_layer, split_key=split_key, baselines=False
    ).loc[layer]
    rows, cols, _, _ = split_block(
        data, methyl, split=split, split_key=split_key, mod=None if isinstance(data, AnnData) else mod or Key.mod.methyl
    )
    block = np.ix_(rows, cols)
    pred = to_dense_float(get_matrix(methyl, layer))[block]
    truth = to_dense_float(get_matrix(methyl, truth_layer))[block]
    usable = ~np.isnan(truth) & ~np.isnan(pred)
    left, right = row_of_axes(axes, 2, panel_size=(5, 4), what="two (observed vs predicted, per-CpG correlation)")
    fig = left.figure
    _density(left, truth[usable], pred[usable], gridsize=gridsize, label="pairs per hexagon")
    left.set_xlabel("observed beta value")
    left.set_ylabel("predicted beta value")
    left.set_title(
        f"{split or 'all'} pairs: Spearman {scores['spearman']:.3f}, MAE {scores['mae']:.3f}\n"
        f"(n = {int(scores['n_pairs']):,}{_skipped(int((~usable).sum()))})",
        fontsize="medium",
    )
    rho = columnwise_spearman(truth, pred)
    labels = None if groupby is None else methyl.var[groupby].to_numpy()[cols]
    _correlation_histogram(right, rho, labels, groupby=groupby)
    n_none = int(np.isnan(rho).sum())
    none = f"; {n_none:,} without a correlation" if n_none else ""
    right.set_title(
        f"per-CpG Spearman: median {scores['per_cpg_spearman']:.3f}\n(n = {len(rho) - n_none:,} CpGs{none})",
        fontsize="medium",
    )
    return fig


def _effect_matrix(effects: AnnData, row: int) -> pd.DataFrame:
    """Contexts x signals of one variant's log-ratios, in the order of `effects.var`."""
    frame = pd.DataFrame(
        {
            "context": effects.var[Key.var.context].astype(str).to_numpy(),
            "signal": effects.var[Key.var.signal].astype(str).to_numpy(),
            "value": to_dense_float(effects.X[row : row + 1]).ravel(),
        }
    )
    table = frame.pivot(index="context", columns="signal", values="value")
    return table.loc[pd.unique(frame["context"]), pd.unique(frame["signal"])]


def _effect_heatmap(ax: Axes, table: pd.DataFrame, *, vmax: float, title: str, unit: str) -> None:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(table.to_numpy()), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label=unit)
    ax.set_xticks(np.arange(table.shape[1]), list(table.columns), rotation=45, ha="right")
    ax.set_yticks(np.arange(table.shape[0]), list(table.index))
    ax.set_xlabel("signal")
    ax.set_ylabel("context")
    n_nan = int(table.isna().to_numpy().sum())
    ax.set_title(f"{title}\n({table.size - n_nan:,} effects{_skipped(n_nan)})", fontsize="medium")


def variant_effects(
    effects: AnnData,
    *,
    variant: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Axes | Figure:
    """Heat map of variant effects, contexts x signals, on a diverging scale centred on 0 (alt above ref: red).

    The colour is the log-ratio written by :func:`epiformer.tl.variant_effect`,
    ``log((alt + eps) / (ref + eps))``; all panels share one symmetric scale. NaN effects are drawn grey and
    counted in the panel's title.

    Parameters
    ----------
    effects
        The AnnData returned by :func:`epiformer.tl.variant_effect` (variants x context|signal).
    variant
        The variant (an `obs_name`) to draw; `None` draws one panel per variant.
    ax
        With `variant`, the Axes to draw into; without, one Axes per variant. A new figure is made when `None`.

    Returns
    -------
    The Axes drawn into when `variant` is given; otherwise the Figure holding one panel per variant.
    """
    if not isinstance(effects, AnnData) or not {Key.var.context, Key.var.signal} <= set(effects.var.columns):
        msg = "`effects` must be the AnnData returned by `ef.tl.variant_effect` (var: 'context', 'signal')."
        raise ValueError(msg)
    names = [str(v) for v in effects.obs_names]
    if variant is not None and variant not in names:
        msg = f"`variant={variant!r}` is not a variant of `effects`; it has {first_items(names)}."
        raise KeyError(msg)
    chosen = names if variant is None else [variant]
    tables = [_effect_matrix(effects, names.index(v)) for v in chosen]
    values = np.concatenate([t.to_numpy().ravel() for t in tables])
    vmax = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    eps = effects.uns.get(Key.uns.variant_effect, {}).get("params", {}).get("eps")
    unit = "log((alt + eps) / (ref + eps))" if eps is None else f"log((alt + {eps:g}) / (ref + {eps:g}))"
    size = (5, 3.5) if variant is not None else (4.2, 3.5)
    panels = row_of_axes(ax, len(chosen), panel_size=size, what="one per variant")
    for panel, name, table in zip(panels, chosen, tables, strict=True):
        _effect_heatmap(panel, table, vmax=vmax or 1.0, title=f"variant effect: {name}", unit=unit)
    return panels[0] if variant is not None else panels[0].figure
