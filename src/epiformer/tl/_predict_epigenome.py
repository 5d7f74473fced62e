"""EpiGePT predictions over any genomic regions: overlapping 128-kb windows, centre-cropped, for many contexts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import timed
from epiformer._sequence import parse_regions
from epiformer._utils import record_params
from epiformer.io import Genome

if TYPE_CHECKING:
    from epiformer.models import EpiGePT


def predict_epigenome(
    contexts: AnnData,
    model: EpiGePT,
    *,
    regions: Any,
    coordinates: Literal["0-based", "1-based"] | None = None,
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
        ``"chr22:20000001-20500000"`` (1-based, inclusive), a list of them or of ``(chrom, start, end)``
        tuples (1-based, inclusive), a BED file path (``.bed``/``.bed.gz``, 0-based, half-open), a pyranges
        object (0-based, half-open) or a DataFrame with `chrom`, `start`, `end` (see `coordinates`); widened
        to whole 128-bp bins. Regions must not overlap.
    coordinates
        How the `start`/`end` of a `regions` DataFrame count: ``"0-based"`` (half-open, as BED, bioframe and
        pyranges) or ``"1-based"`` (inclusive). `None` takes ``regions.attrs["coordinates"]``; tables epiformer
        made (such as the `var` of this function's output) need neither, any other table must say.
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
    sha256, `weights` (``"checkpoint"``, ``"trained"`` or ``"random"``: never loaded nor trained, which is warned
    once per model), window, crop, and `motif_source`: ``"jaspar (approximation)"`` for the built-in scan of the
    authors' HOMER features, or what precomputed `motif_scores` record, e.g. ``"precomputed (homer)"``).
    """
    from epiformer.models.epigept import (
        check_epigept,
        checkpoint_sha256,
        context_matrix,
        motif_source,
        predict_tiles,
        tile_regions,
    )

    with timed("ef.tl.predict_epigenome") as written:
        check_epigept(model)
        model.warn_if_random()
        if batch_size < 1:
            msg = f"`batch_size` must be positive, got {batch_size}."
            raise ValueError(msg)
        X, names = context_matrix(contexts, model)
        tiling = tile_regions(model.config, parse_regions(regions, coordinates=coordinates), crop=crop)
        genome = Genome.open(fasta)
        source = motif_source(model, names, motif_scores=motif_scores, motifs=motifs)
        values, window_ids = predict_tiles(
            model, tiling, X, genome=genome, source=source, batch_size=batch_size, device=device, progress=progress
        )

        cfg = model.config
        out = AnnData(obs=contexts.obs.copy(), var=tiling.var.assign(**{Key.var.window: window_ids}))
        for k, signal in enumerate(cfg.signals):
            out.layers[signal] = np.ascontiguousarray(values[:, :, k])
        record_params(
            out,
            Key.uns.epigept,
            {
                "variant": cfg.variant,
                "checkpoint": model.checkpoint.get("path"),
                "checkpoint_sha256": checkpoint_sha256(model),
                "weights": model.weights_source,
                "window": cfg.window,
                "bin_size": cfg.bin_size,
                "crop": tiling.crop,
                "motif_source": motif_provenance(motif_scores, motifs),
            },
            outputs={f"layers[{s!r}]": out.layers[s] for s in cfg.signals},
            signals=list(cfg.signals),
            n_windows=tiling.n_windows,
        )
        written += [*(f"layers[{s!r}]" for s in cfg.signals), f"uns[{Key.uns.epigept!r}]"]
    return out


def motif_provenance(motif_scores: AnnData | None, motifs: Mapping | None) -> str:
    """Where the motif features came from, as `uns[...]['params']['motif_source']` records it."""
    if motif_scores is not None:
        recorded = motif_scores.uns.get(Key.uns.motif_scores, {}).get("params", {}).get("motif_source")
        return f"precomputed ({recorded})" if recorded else "precomputed"
    return "user-supplied matrices (approximation)" if motifs else "jaspar (approximation)"
