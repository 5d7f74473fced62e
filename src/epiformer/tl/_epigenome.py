"""EpiGePT predictions over any genomic regions: overlapping 128-kb windows, centre-cropped, for many contexts."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._sequence import normalize_chrom, one_hot, parse_regions
from epiformer._utils import progress_bar, record_params, resolve_device, to_dense_float
from epiformer._validation import _first
from epiformer.io import Genome
from epiformer.pp._motifs import MotifScanner, bin_frame, bin_range, jaspar_motifs

if TYPE_CHECKING:
    import torch

    from epiformer.models import EpiGePT

_WINDOWS_PER_BLOCK = 16


def check_model(model: Any) -> None:
    """Raise a :class:`TypeError` unless `model` is an :class:`~epiformer.models.EpiGePT`."""
    from epiformer.models import EpiGePT

    if not isinstance(model, EpiGePT):
        msg = (
            f"`model` must be an `ef.models.EpiGePT` (e.g. `EpiGePT.from_pretrained(...)`), not {type(model).__name__}."
        )
        raise TypeError(msg)


def context_matrix(contexts: Any, model: EpiGePT) -> tuple[np.ndarray, list[str]]:
    """Context vectors ``(n_contexts, n_tfs)`` in the model's TF order, and those TF names.

    With a model that knows its TFs, `contexts.var_names` are matched to them (case-insensitively) and
    reordered; otherwise the columns must already be the model's `n_tfs` TFs in checkpoint order.
    """
    if not isinstance(contexts, AnnData):
        msg = "`contexts` must be an AnnData of contexts x TFs, as made by `ef.pp.tf_context`."
        raise TypeError(msg)
    X = to_dense_float(contexts.X)
    var = [str(v) for v in contexts.var_names]
    if model.tf_names is not None:
        names = list(model.tf_names)
        if var != names:
            position = {v.upper(): i for i, v in enumerate(var)}
            missing = [t for t in names if t.upper() not in position]
            if missing:
                msg = (
                    f"The contexts lack {len(missing)} of the model's {len(names)} TFs ({_first(missing)}); build "
                    "them with `ef.pp.tf_context(adata, tfs=model, ...)`."
                )
                raise ValueError(msg)
            X = X[:, [position[t.upper()] for t in names]]
    else:
        if len(var) != model.config.n_tfs:
            msg = (
                f"The contexts have {len(var)} TFs but the model takes {model.config.n_tfs}, and the model does not "
                "know its TF names: pass `tf_names=` to `EpiGePT.from_pretrained`."
            )
            raise ValueError(msg)
        names = var
    if X.shape[0] == 0:
        msg = "`contexts` holds no context."
        raise ValueError(msg)
    if not np.isfinite(X).all():
        msg = "`contexts.X` contains NaN or infinite values; context vectors must be finite (log1p of QN TPM)."
        raise ValueError(msg)
    return X, names


class PrecomputedMotifs:
    """Motif scores looked up from a bins x TFs AnnData (as :func:`epiformer.pp.motif_scores` returns)."""

    def __init__(self, scores: AnnData, tfs: Sequence[str], bin_size: int) -> None:
        if not isinstance(scores, AnnData) or not {Key.var.chrom, Key.var.start} <= set(scores.obs.columns):
            msg = "`motif_scores` must be an AnnData of bins x TFs with `obs` columns chrom and start (see `ef.pp.motif_scores`)."
            raise ValueError(msg)
        position = {str(v).upper(): i for i, v in enumerate(scores.var_names)}
        missing = [t for t in tfs if t.upper() not in position]
        if missing:
            msg = f"`motif_scores` lacks {len(missing)} of the model's TFs: {_first(missing)}."
            raise ValueError(msg)
        starts = scores.obs[Key.var.start].to_numpy(dtype=np.int64)
        if ((starts - 1) % bin_size).any():
            msg = f"`motif_scores` bins must start at 128 k + 1 (the {bin_size}-bp grid of `ef.pp.motif_scores`)."
            raise ValueError(msg)
        self.values = to_dense_float(scores.X)[:, [position[t.upper()] for t in tfs]]
        chroms = [normalize_chrom(c) for c in scores.obs[Key.var.chrom].astype(str)]
        self.rows = {(c, int(s - 1) // bin_size): i for i, (c, s) in enumerate(zip(chroms, starts, strict=True))}
        self.n_missing = 0

    def scan(self, genome: Genome, chrom: str, first_bin: int, n_bins: int) -> np.ndarray:
        """Scores of bins ``first_bin ..`` (0 where the table has no row)."""
        chrom = normalize_chrom(chrom)
        rows = np.array([self.rows.get((chrom, first_bin + i), -1) for i in range(n_bins)])
        out = np.zeros((n_bins, self.values.shape[1]), dtype=np.float32)
        found = rows >= 0
        out[found] = self.values[rows[found]]
        self.n_missing += int((~found).sum())
        return out


def motif_source(
    model: EpiGePT,
    tfs: Sequence[str],
    *,
    motif_scores: AnnData | None,
    motifs: Mapping[str, Sequence[np.ndarray]] | None,
) -> MotifScanner | PrecomputedMotifs:
    """Where the motif scores of each window come from: a precomputed table, or a scan (JASPAR by default)."""
    if motif_scores is not None:
        return PrecomputedMotifs(motif_scores, tfs, model.config.bin_size)
    scanner = MotifScanner(
        motifs if motifs is not None else jaspar_motifs(tfs=tfs), tfs, bin_size=model.config.bin_size
    )
    absent = scanner.tfs_without_motif
    if len(absent) == len(tfs):
        msg = "None of the model's TFs has a motif in `motifs`; check the TF names."
        raise ValueError(msg)
    if absent:
        warnings.warn(
            f"{len(absent)} of {len(tfs)} TFs have no motif ({_first(absent)}); their motif scores are 0.",
            UserWarning,
            stacklevel=3,
        )
    return scanner


def predict_window(
    model: EpiGePT, codes: np.ndarray, motif: np.ndarray, contexts: torch.Tensor, batch_size: int
) -> np.ndarray:
    """Signals ``(n_contexts, n_bins, n_signals)`` of one window: sequence codes, motif scores, context vectors."""
    import torch

    device = contexts.device
    with torch.inference_mode():
        seq = torch.from_numpy(one_hot(codes).T.copy()).to(device)[None]
        embedding = model.embed_sequence(seq)
        motif_t = torch.from_numpy(np.ascontiguousarray(motif, dtype=np.float32)).to(device)[None]
        out = []
        for chunk in contexts.split(batch_size):
            features = model.tf_features(motif_t, chunk)
            out.append(model.encode(embedding.expand(len(chunk), -1, -1), features).float().cpu())
    return torch.cat(out).numpy()


def predict_epigenome(
    contexts: AnnData,
    model: EpiGePT,
    *,
    regions: Any,
    fasta: Any,
    motif_scores: AnnData | None = None,
    motifs: Mapping[str, Sequence[np.ndarray]] | None = None,
    crop: int | None = None,
    batch_size: int = 8,
    device: str = "auto",
    progress: bool = True,
) -> AnnData:
    """Predict EpiGePT's chromatin signals over genomic regions for every context.

    Regions of any length are tiled with the model's 128-kb windows on the 128-bp bin grid. Windows
    overlap: each one keeps only its centre (`crop` bins are dropped on both sides, where bins see less
    sequence context), and consecutive windows step by the kept width, so every bin of a region is
    predicted exactly once, from the window where it is most central. The sequence embedding and the
    motif scores of a window are computed once and shared by all contexts.

    Parameters
    ----------
    contexts
        Contexts x TFs, as made by :func:`epiformer.pp.tf_context` (`X` = ``log1p`` of the quantile-normalised
        TF expression); matched to the model's TF names when it has them.
    model
        An :class:`~epiformer.models.EpiGePT` (e.g. from :meth:`~epiformer.models.EpiGePT.from_pretrained`).
    regions
        ``"chr22:20000001-20500000"`` (1-based, inclusive), a list of them, or a DataFrame with `chrom`,
        `start`, `end`; widened to whole 128-bp bins. Regions must not overlap.
    fasta
        Reference genome of the model's build: a FASTA path, an :class:`epiformer.io.Genome`, or a segment
        such as :func:`epiformer.datasets.hg19_chr22_segment`. Sequence outside it reads as N.
    motif_scores
        Precomputed bins x TFs motif scores (e.g. the authors' HOMER scores wrapped in an AnnData shaped like
        :func:`epiformer.pp.motif_scores` output) covering the windows; bins it lacks score 0 (a warning says
        how many). `None` scans the sequence (see `motifs`).
    motifs
        TF -> probability matrices to scan with; `None` uses JASPAR (:func:`epiformer.pp.jaspar_motifs`).
    crop
        Bins dropped at each end of a window; default a quarter of the window (250 bins = 32 kb).
    batch_size
        Contexts per forward pass.
    device
        ``"auto"`` (CUDA, then MPS, then CPU) or a torch device.
    progress
        Show a progress bar over windows.

    Returns
    -------
    AnnData of contexts x bins. `obs` is copied from `contexts`; `var` holds each bin's `chrom`, `start`,
    `end` (1-based, inclusive), `region` and `window_id`; one layer per signal (``DNase``, ``CTCF``, ...)
    with the predicted ``log(count + 1)``; `uns['epigept']` the settings (model release, checkpoint
    sha256, window, crop, motif source).
    """
    import torch

    check_model(model)
    X, names = context_matrix(contexts, model)
    spans = parse_regions(regions)
    genome = Genome.open(fasta)
    cfg = model.config
    crop = cfg.n_bins // 4 if crop is None else int(crop)
    keep = cfg.n_bins - 2 * crop
    if crop < 0 or keep < 1:
        msg = f"`crop` must be between 0 and {(cfg.n_bins - 1) // 2} bins for a {cfg.n_bins}-bin window, got {crop}."
        raise ValueError(msg)
    if batch_size < 1:
        msg = f"`batch_size` must be positive, got {batch_size}."
        raise ValueError(msg)
    plan = []
    for chrom, start, end in spans:
        first, n = bin_range(start, end, cfg.bin_size)
        plan.append((chrom, f"{chrom}:{start}-{end}", first, n, math.ceil(n / keep)))
    frames = [
        bin_frame(chrom, first, n, cfg.bin_size).assign(**{Key.var.region: name}) for chrom, name, first, n, _ in plan
    ]
    var = pd.concat(frames)
    if var.index.has_duplicates:
        msg = f"The regions overlap (bins {_first(list(var.index[var.index.duplicated()]))} repeat); merge them first."
        raise ValueError(msg)
    source = motif_source(model, names, motif_scores=motif_scores, motifs=motifs)

    device = resolve_device(device)
    was_training = model.training
    original = next(model.parameters()).device
    model.eval().to(device)
    contexts_t = torch.from_numpy(X).to(device)
    values = np.zeros((X.shape[0], len(var), cfg.n_signals), dtype=np.float32)
    window_ids = np.zeros(len(var), dtype=np.int64)
    total = sum(p[-1] for p in plan)
    column, window_id = 0, 0
    try:
        with progress_bar(total=total, desc="EpiGePT windows", unit="window", disable=not progress) as bar:
            for chrom, _, first, n, n_windows in plan:
                for block in range(0, n_windows, _WINDOWS_PER_BLOCK):
                    count = min(_WINDOWS_PER_BLOCK, n_windows - block)
                    span_first = first + block * keep - crop
                    span_bins = (count - 1) * keep + cfg.n_bins
                    motif = source.scan(genome, chrom, span_first, span_bins)
                    codes = genome.fetch(
                        chrom, span_first * cfg.bin_size + 1, (span_first + span_bins) * cfg.bin_size, pad=True
                    )
                    for w in range(count):
                        lo = w * keep
                        window_codes = codes[lo * cfg.bin_size : (lo + cfg.n_bins) * cfg.bin_size]
                        pred = predict_window(model, window_codes, motif[lo : lo + cfg.n_bins], contexts_t, batch_size)
                        done = (block + w) * keep
                        take = min(keep, n - done)
                        values[:, column + done : column + done + take] = pred[:, crop : crop + take]
                        window_ids[column + done : column + done + take] = window_id
                        window_id += 1
                        bar.update()
                column += n
    finally:
        model.to(original).train(was_training)
    if isinstance(source, PrecomputedMotifs) and source.n_missing:
        warnings.warn(
            f"`motif_scores` had no row for {source.n_missing} bins of the prediction windows; they scored 0.",
            UserWarning,
            stacklevel=2,
        )

    var[Key.var.window] = window_ids
    out = AnnData(obs=contexts.obs.copy(), var=var)
    for k, signal in enumerate(cfg.signals):
        out.layers[signal] = np.ascontiguousarray(values[:, :, k])
    info = model.checkpoint_info
    record_params(
        out,
        Key.uns.epigept,
        {
            "variant": cfg.variant,
            "checkpoint": info.get("path"),
            "checkpoint_sha256": info.get("sha256") or info.get("source_sha256"),
            "window": cfg.window,
            "bin_size": cfg.bin_size,
            "crop": crop,
            "motifs": "precomputed" if motif_scores is not None else ("user-supplied" if motifs else "JASPAR2024"),
        },
        signals=list(cfg.signals),
        n_windows=int(window_id),
    )
    return out
