"""Training EpiGePT with Lightning: masked MSE over (window, context) pairs, as the hg38 release trains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from torch.utils.data import DataLoader, Dataset, Subset

from epiformer._lightning import L, fit
from epiformer._sequence import bin_bounds, normalize_chrom, one_hot
from epiformer._utils import layer_names, split_rows, to_dense_float
from epiformer.io import Genome
from epiformer.models._base import history_frame
from epiformer.models.epigept._engine import motif_source
from epiformer.models.epigept._module import EpiGePT


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(mask * (pred - target)^2) / sum(mask)``: the authors' loss; unmeasured signals do not count.

    Targets under a zero mask may be NaN.
    """
    mask = mask.to(pred.dtype)
    return (mask * (pred - torch.nan_to_num(target)).square()).sum() / (mask.sum() + 1e-8)


class WindowContextDataset(Dataset):
    """(window, context) training pairs: one-hot sequence, TF features input, targets and their mask.

    Parameters
    ----------
    codes
        Base codes of each window ``(n_windows, window_bp)``.
    motifs
        Motif scores ``(n_windows, n_bins, n_tfs)``.
    contexts
        Context vectors ``(n_contexts, n_tfs)``.
    targets
        ``(n_contexts, n_windows, n_bins, n_signals)`` in ``log(count + 1)``, NaN where not measured.
    pairs
        ``(n_pairs, 2)`` window and context index of each item.
    """

    def __init__(
        self, codes: np.ndarray, motifs: np.ndarray, contexts: np.ndarray, targets: np.ndarray, pairs: np.ndarray
    ) -> None:
        self.codes, self.motifs, self.contexts, self.targets, self.pairs = codes, motifs, contexts, targets, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, ...]:
        w, c = self.pairs[item]
        seq = torch.from_numpy(one_hot(self.codes[w]).T.copy())
        features = torch.from_numpy(self.motifs[w] * self.contexts[c][None, :])
        target = torch.from_numpy(self.targets[c, w])
        mask = ~torch.isnan(target)
        return seq, features, torch.nan_to_num(target), mask


class EpiGePTModule(L.LightningModule):
    """Lightning wrapper of :class:`EpiGePT`: masked MSE, Adam (learning rate 5e-5 as published).

    Parameters
    ----------
    model
        The network to train (updated in place).
    lr
        Adam learning rate.
    """

    def __init__(self, model: EpiGePT, *, lr: float = 5e-5) -> None:
        super().__init__()
        self.model = model
        self.lr = lr

    def forward(self, seq: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.model(seq, features)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        seq, features, target, mask = batch
        return masked_mse(self.model(seq, features), target, mask)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)


def track_windows(tracks: AnnData, bin_size: int, n_bins: int) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """Model windows covering the bins of `tracks`: (chrom, first bin) of each, and each bin's window and offset."""
    names, starts, ends = bin_bounds(tracks.var, "`tracks.var`")
    if ((starts - 1) % bin_size).any() or (ends - starts + 1 != bin_size).any():
        msg = (
            f"`tracks` bins must lie on the model's {bin_size}-bp grid: start = {bin_size} k + 1, end = start + "
            f"{bin_size - 1} (the layout `ef.tl.predict_epigenome` writes)."
        )
        raise ValueError(msg)
    chroms = np.array([normalize_chrom(c) for c in names])
    bins = (starts - 1) // bin_size
    windows: list[tuple[str, int]] = []
    window_of = np.empty(len(bins), dtype=np.int64)
    for chrom in pd.unique(chroms):
        rows = np.flatnonzero(chroms == chrom)
        origin = bins[rows].min()
        slot = (bins[rows] - origin) // n_bins
        for s in np.unique(slot):
            window_of[rows[slot == s]] = len(windows)
            windows.append((names[rows[0]], int(origin + s * n_bins)))
    offsets = bins - np.array([windows[w][1] for w in window_of])
    return windows, window_of, offsets


def training_data(
    model: EpiGePT,
    tracks: AnnData,
    contexts: np.ndarray,
    tfs: Sequence[str],
    *,
    genome: Genome,
    motif_scores: AnnData | None,
    motifs: Mapping[str, Sequence[np.ndarray]] | None,
) -> WindowContextDataset:
    """The (window, context) pairs of `tracks` with any measured value, as a dataset.

    Parameters
    ----------
    model
        The network (its bin grid, window and signals).
    tracks
        Contexts x bins on the model's grid, one layer per signal (a subset of ``model.signals``), values in
        ``log(count + 1)``, NaN where not measured.
    contexts
        Context vectors ``(tracks.n_obs, n_tfs)`` in the model's TF order, one per row of `tracks`.
    tfs
        The model's TFs.
    genome, motif_scores, motifs
        Sequence and motif source (see :func:`motif_source`).
    """
    cfg = model.config
    layers = layer_names(tracks)
    signals = [s for s in cfg.signals if s in layers]
    if not signals:
        msg = f"`tracks` has no layer named after a model signal; expected some of {list(cfg.signals)}, found {layers}."
        raise ValueError(msg)
    windows, window_of, offsets = track_windows(tracks, cfg.bin_size, cfg.n_bins)
    targets = np.full((tracks.n_obs, len(windows), cfg.n_bins, cfg.n_signals), np.nan, dtype=np.float32)
    for signal in signals:
        values = to_dense_float(tracks.layers[signal])
        if np.isinf(values).any() or (values < 0).any():
            msg = (
                f"Layer {signal!r} of `tracks` has negative or infinite values; targets are log(count + 1) "
                "(NaN = unmeasured)."
            )
            raise ValueError(msg)
        targets[:, window_of, offsets, cfg.signals.index(signal)] = values
    measured = ~np.isnan(targets).all(axis=(2, 3))  # (contexts, windows)
    pairs = np.argwhere(measured.T)  # (window, context)
    if len(pairs) == 0:
        msg = "`tracks` holds no measured value (all NaN)."
        raise ValueError(msg)
    source = motif_source(model, tfs, motif_scores=motif_scores, motifs=motifs)
    bs = cfg.bin_size
    codes = np.stack([genome.fetch(c, k * bs + 1, (k + cfg.n_bins) * bs, pad=True) for c, k in windows])
    motif = np.stack([source.scan(genome, c, k, cfg.n_bins) for c, k in windows]).astype(np.float32)
    return WindowContextDataset(codes, motif, contexts.astype(np.float32), targets, pairs)


def train(
    model: EpiGePT,
    dataset: WindowContextDataset,
    *,
    val_size: float,
    batch_size: int,
    lr: float,
    random_state: int | None,
    precision: str | None = "32-true",
    **fit_options: Any,
) -> pd.DataFrame:
    """Train `model` in place on a random split of `dataset` through :func:`epiformer._lightning.fit`.

    A `val_size` fraction of the pairs is held out (:func:`epiformer._utils.split_rows`) and drives early
    stopping. The model ends in evaluation mode on the device it started on, with :attr:`EpiGePT.history`
    set; the history is returned too.

    Parameters
    ----------
    model
        The network, updated in place.
    dataset
        The (window, context) pairs (see :func:`training_data`).
    val_size
        Fraction of the pairs held out for validation.
    batch_size
        Pairs per optimisation step.
    lr
        Adam learning rate.
    random_state
        Seed of the split, the shuffling and everything random in training.
    precision
        Lightning precision (`None`: bf16-mixed on CUDA).
    **fit_options
        ``max_epochs``, ``progress``, ``early_stopping_patience``, ``max_time``, ``accelerator``, ... of
        :func:`epiformer._lightning.fit`.
    """
    train_items, val_items = split_rows(np.arange(len(dataset)), val_size=val_size, random_state=random_state)
    if len(train_items) == 0:
        msg = f"`val_size={val_size}` leaves none of the {len(dataset)} (window, context) pairs to train on."
        raise ValueError(msg)
    generator = torch.Generator()
    if random_state is not None:
        generator.manual_seed(random_state)
    train_loader = DataLoader(
        Subset(dataset, train_items.tolist()), batch_size=batch_size, shuffle=True, generator=generator
    )
    val_loader = DataLoader(Subset(dataset, val_items.tolist()), batch_size=batch_size) if len(val_items) else None
    history = fit(
        EpiGePTModule(model, lr=lr),
        train=train_loader,
        val=val_loader,
        random_state=random_state,
        precision=precision,
        **fit_options,
    )
    model.history = history_frame(history)
    return model.history
