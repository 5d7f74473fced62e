"""Training or fine-tuning EpiGePT on the user's own signal tracks, through Lightning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_params, doc_random_state
from epiformer._sequence import normalize_chrom
from epiformer._utils import to_dense_float
from epiformer._validation import _first
from epiformer.io import Genome
from epiformer.tl._epigenome import check_model, context_matrix, motif_source

if TYPE_CHECKING:
    from epiformer.models import EpiGePT


def _windows(tracks: AnnData, bin_size: int, n_bins: int) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """Model windows covering the track bins: (chrom, first bin) of each, and each bin's window and offset."""
    missing = {Key.var.chrom, Key.var.start, Key.var.end} - set(tracks.var.columns)
    if missing:
        msg = f"`tracks.var` lacks {sorted(missing)}; it needs chrom, start, end of {bin_size}-bp bins (1-based)."
        raise ValueError(msg)
    starts = tracks.var[Key.var.start].to_numpy(dtype=np.int64)
    ends = tracks.var[Key.var.end].to_numpy(dtype=np.int64)
    if ((starts - 1) % bin_size).any() or (ends - starts + 1 != bin_size).any():
        msg = (
            f"`tracks` bins must lie on the model's {bin_size}-bp grid: start = {bin_size} k + 1, end = start + "
            f"{bin_size - 1} (the layout `ef.tl.predict_epigenome` writes)."
        )
        raise ValueError(msg)
    chroms = np.array([normalize_chrom(c) for c in tracks.var[Key.var.chrom].astype(str)])
    bins = (starts - 1) // bin_size
    windows: list[tuple[str, int]] = []
    window_of = np.empty(len(bins), dtype=np.int64)
    for chrom in pd.unique(chroms):
        rows = np.flatnonzero(chroms == chrom)
        origin = bins[rows].min()
        slot = (bins[rows] - origin) // n_bins
        for s in np.unique(slot):
            window_of[rows[slot == s]] = len(windows)
            windows.append((str(tracks.var[Key.var.chrom].iloc[rows[0]]), int(origin + s * n_bins)))
    offsets = bins - np.array([windows[w][1] for w in window_of])
    return windows, window_of, offsets


@doc_params(random_state=doc_random_state)
def fit_epigept(
    tracks: AnnData,
    model: EpiGePT,
    *,
    contexts: AnnData,
    fasta: Any,
    motif_scores: AnnData | None = None,
    motifs: Mapping[str, Sequence[np.ndarray]] | None = None,
    max_epochs: int = 10,
    batch_size: int = 4,
    lr: float = 5e-5,
    validation_fraction: float = 0.1,
    early_stopping_patience: int | None = 3,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    random_state: int = 0,
    progress: bool = True,
) -> EpiGePT:
    """Train (or fine-tune) EpiGePT on measured signal tracks with the authors' masked MSE, through Lightning.

    Tracks are laid out as :func:`epiformer.tl.predict_epigenome` writes its predictions: contexts x
    128-bp bins, one layer per signal named as the model's signals, values in ``log(count + 1)``, NaN
    where a context lacks that assay. Bins are grouped into the model's windows; every (window, context)
    pair with any measured value is a training item, and the loss ``sum(mask (pred - y)^2) / sum(mask)``
    ignores unmeasured signals, so contexts missing an assay still train on the others (as the hg38
    release). A random `validation_fraction` of the pairs is held out (the authors' 90/10 split) and
    drives early stopping. Multi-GPU / multi-node runs go through Lightning's `strategy` and `num_nodes`.

    Parameters
    ----------
    tracks
        Contexts x bins with `var` `chrom` / `start` / `end` on the model's grid and one layer per signal
        (a subset of ``model.signals``; missing layers are unmeasured everywhere).
    model
        The network to train, updated in place (e.g. a fresh ``EpiGePT(config)`` or a pretrained one).
    contexts
        Contexts x TFs (:func:`epiformer.pp.tf_context`) covering every context of `tracks`.
    fasta
        Reference genome: a FASTA path, an :class:`epiformer.io.Genome` or a genome segment.
    motif_scores
        Precomputed bins x TFs motif scores (see :func:`epiformer.tl.predict_epigenome`); `None` scans.
    motifs
        TF -> probability matrices to scan with; `None` uses JASPAR.
    max_epochs
        Maximum passes over the training pairs.
    batch_size
        Pairs per optimisation step.
    lr
        Adam learning rate (5e-5 in the paper).
    validation_fraction
        Fraction of pairs held out for validation (0 to train on all).
    early_stopping_patience
        Epochs without validation improvement before stopping (3 in the paper); `None` never stops early.
    accelerator, devices, strategy, num_nodes
        Passed to :class:`lightning.pytorch.Trainer`.
    {random_state}
    progress
        Show Lightning's progress bar.

    Returns
    -------
    The trained `model` (in evaluation mode), with `model.history`: a DataFrame of `epoch`,
    `train_loss` and `val_loss` (plot it with :func:`epiformer.pl.training_history`).
    """
    import lightning.pytorch as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping
    from torch.utils.data import DataLoader, Subset

    from epiformer._lightning import HistoryCallback, make_trainer, quiet_lightning
    from epiformer.models.epigept._training import EpiGePTModule, WindowContextDataset

    check_model(model)
    if not isinstance(tracks, AnnData):
        msg = "`tracks` must be an AnnData of contexts x 128-bp bins with one layer per signal."
        raise TypeError(msg)
    cfg = model.config
    signals = [s for s in cfg.signals if s in tracks.layers]
    if not signals:
        msg = f"`tracks` has no layer named after a model signal; expected some of {list(cfg.signals)}, found {list(tracks.layers)}."
        raise ValueError(msg)
    absent = [c for c in tracks.obs_names if c not in contexts.obs_names]
    if absent:
        msg = f"{len(absent)} contexts of `tracks` are not in `contexts`: {_first(absent)}."
        raise ValueError(msg)
    if not 0 <= validation_fraction < 1 or max_epochs < 1 or batch_size < 1:
        msg = "`validation_fraction` must be in [0, 1), `max_epochs` and `batch_size` positive."
        raise ValueError(msg)
    X, names = context_matrix(contexts[list(tracks.obs_names)], model)
    windows, window_of, offsets = _windows(tracks, cfg.bin_size, cfg.n_bins)
    targets = np.full((tracks.n_obs, len(windows), cfg.n_bins, cfg.n_signals), np.nan, dtype=np.float32)
    for signal in signals:
        values = to_dense_float(tracks.layers[signal])
        if np.isinf(values).any() or (values < 0).any():
            msg = f"Layer {signal!r} of `tracks` has negative or infinite values; targets are log(count + 1) (NaN = unmeasured)."
            raise ValueError(msg)
        targets[:, window_of, offsets, cfg.signals.index(signal)] = values
    measured = ~np.isnan(targets).all(axis=(2, 3))  # (contexts, windows)
    pairs = np.argwhere(measured.T)  # (window, context)
    if len(pairs) == 0:
        msg = "`tracks` holds no measured value (all NaN)."
        raise ValueError(msg)

    genome = Genome.open(fasta)
    source = motif_source(model, names, motif_scores=motif_scores, motifs=motifs)
    codes = np.stack(
        [genome.fetch(c, k * cfg.bin_size + 1, (k + cfg.n_bins) * cfg.bin_size, pad=True) for c, k in windows]
    )
    motif = np.stack([source.scan(genome, c, k, cfg.n_bins) for c, k in windows]).astype(np.float32)
    dataset = WindowContextDataset(codes, motif, X.astype(np.float32), targets, pairs)

    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(pairs))
    n_val = int(round(validation_fraction * len(pairs))) if len(pairs) > 1 else 0
    if validation_fraction > 0 and len(pairs) > 1:
        n_val = max(n_val, 1)
    val_items, train_items = order[:n_val], order[n_val:]
    generator = torch.Generator().manual_seed(random_state)
    train_loader = DataLoader(
        Subset(dataset, train_items.tolist()), batch_size=batch_size, shuffle=True, generator=generator
    )
    val_loader = DataLoader(Subset(dataset, val_items.tolist()), batch_size=batch_size) if n_val else None

    history = HistoryCallback()
    callbacks: list[L.Callback] = [history]
    if val_loader is not None and early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=early_stopping_patience, mode="min"))
    with quiet_lightning():
        L.seed_everything(random_state, verbose=False)
        trainer = make_trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            precision="32-true",
            progress=progress,
            callbacks=callbacks,
        )
        trainer.fit(EpiGePTModule(model, lr=lr), train_dataloaders=train_loader, val_dataloaders=val_loader)
    model.cpu().eval()
    model.history = pd.DataFrame(history.rows)
    return model
