"""Training or fine-tuning EpiGePT on the user's own signal tracks, through Lightning."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from anndata import AnnData

from epiformer._logging import timed
from epiformer._utils import renamed_options
from epiformer._validation import first_items
from epiformer.io import Genome, read_bigwig

if TYPE_CHECKING:
    from epiformer.models import EpiGePT


@renamed_options(validation_fraction="val_size")
def fit_epigept(
    tracks: AnnData | Mapping[str, Mapping[str, str | os.PathLike]],
    model: EpiGePT,
    *,
    contexts: AnnData,
    fasta: Any,
    regions: Any = None,
    motif_scores: AnnData | None = None,
    motifs: Mapping[str, Sequence[np.ndarray]] | None = None,
    max_epochs: int = 10,
    batch_size: int = 4,
    lr: float = 5e-5,
    val_size: float = 0.1,
    early_stopping_patience: int | None = 3,
    max_time: float | timedelta | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    random_state: int | None = 0,
    progress: bool = True,
) -> EpiGePT:
    """Train (or fine-tune) EpiGePT on measured signal tracks with the authors' masked MSE, through Lightning.

    Tracks are laid out as :func:`epiformer.tl.predict_epigenome` writes its predictions: contexts x
    128-bp bins, one layer per signal named as the model's signals, values in ``log(count + 1)``, NaN
    where a context lacks that assay. Bins are grouped into the model's windows; every (window, context)
    pair with any measured value is a training item, and the loss ``sum(mask (pred - y)^2) / sum(mask)``
    ignores unmeasured signals, so contexts missing an assay still train on the others (as the hg38
    release). A random `val_size` fraction of the pairs is held out (the authors' 90/10 split) and
    drives early stopping. Multi-GPU / multi-node runs go through Lightning's `strategy` and `num_nodes`.

    Measured tracks in bigWig files are read with :func:`epiformer.io.read_bigwig` (its output is this layout),
    or here directly: pass ``tracks={context: {signal: path}}`` and the `regions` to train on, and they are read
    with its defaults (bin means on the model's grid, ``log1p``, bins without data unmeasured).

    Parameters
    ----------
    tracks
        Contexts x bins with `var` `chrom` / `start` / `end` on the model's grid and one layer per signal
        (a subset of ``model.signals``; missing layers are unmeasured everywhere), such as
        :func:`epiformer.io.read_bigwig` returns; or bigWig files as ``{context: {signal: path}}``, read over
        `regions` (a context without a file for a signal is unmeasured for it).
    model
        The network to train, updated in place (e.g. a fresh ``EpiGePT(config)`` or a pretrained one).
    contexts
        Contexts x TFs (:func:`epiformer.pp.tf_context`) covering every context of `tracks`.
    fasta
        Reference genome: a FASTA path, an :class:`epiformer.io.Genome` or a genome segment.
    regions
        With bigWig `tracks`: the regions to train on (``"chr22:20000001-20500000"``, 1-based, inclusive, a
        list of them, a BED file, or any other form :func:`epiformer.io.read_bigwig` takes), binned on the
        model's grid. Only for files.
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
    val_size
        Fraction of pairs held out for validation (0 to train on all).
    early_stopping_patience
        Epochs without validation improvement before stopping (3 in the paper); `None` never stops early.
    max_time
        Wall-clock budget in seconds (or a :class:`~datetime.timedelta`); training stops when it is spent.
    accelerator, devices, strategy, num_nodes
        Passed to :class:`lightning.pytorch.Trainer`.
    random_state
        Seed of the validation split, the shuffling and the initialisation of everything random in training;
        `None` leaves the generators as they are.
    progress
        Show Lightning's progress bar.

    Returns
    -------
    The trained `model` (in evaluation mode), with `model.history`: a DataFrame of `epoch`,
    `train_loss` and `val_loss` (plot it with :func:`epiformer.pl.training_history`).
    """
    from epiformer.models.epigept import check_epigept, context_matrix, train, training_data

    with timed("ef.tl.fit_epigept") as written:
        check_epigept(model)
        if isinstance(tracks, Mapping):
            if regions is None:
                msg = "Pass `regions=` (the regions to train on) with bigWig `tracks`."
                raise ValueError(msg)
            tracks = read_bigwig(tracks, regions=regions, bin_size=model.config.bin_size)
        elif regions is not None:
            msg = "`regions=` is only for `tracks` given as bigWig files; an AnnData of tracks brings its own bins."
            raise ValueError(msg)
        if not isinstance(tracks, AnnData):
            msg = (
                "`tracks` must be an AnnData of contexts x 128-bp bins with one layer per signal, or bigWig files as "
                "{context: {signal: path}}."
            )
            raise TypeError(msg)
        if not isinstance(contexts, AnnData):
            msg = "`contexts` must be an AnnData of contexts x TFs, as made by `ef.pp.tf_context`."
            raise TypeError(msg)
        absent = [c for c in tracks.obs_names if c not in contexts.obs_names]
        if absent:
            msg = f"{len(absent)} contexts of `tracks` are not in `contexts`: {first_items(absent)}."
            raise ValueError(msg)
        if not 0 <= val_size < 1 or max_epochs < 1 or batch_size < 1:
            msg = "`val_size` must be in [0, 1), `max_epochs` and `batch_size` positive."
            raise ValueError(msg)
        X, names = context_matrix(contexts[list(tracks.obs_names)], model)
        dataset = training_data(
            model, tracks, X, names, genome=Genome.open(fasta), motif_scores=motif_scores, motifs=motifs
        )
        train(
            model,
            dataset,
            val_size=val_size,
            batch_size=batch_size,
            lr=lr,
            max_epochs=max_epochs,
            early_stopping_patience=early_stopping_patience,
            random_state=random_state,
            progress=progress,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            max_time=max_time,
        )
        written.append("model.history")
    return model
