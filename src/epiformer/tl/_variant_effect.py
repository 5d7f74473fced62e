"""Variant effects with EpiGePT: reference vs alternative allele, re-scoring the motifs around the allele."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import timed, warn
from epiformer._utils import record_params
from epiformer.io import Genome, read_vcf
from epiformer.tl._predict_epigenome import motif_provenance

if TYPE_CHECKING:
    from epiformer.models import EpiGePT


def _accept_old_order(func: Callable[..., AnnData]) -> Callable[..., AnnData]:
    """Accept the former ``variant_effect(model, variants, *, contexts, ...)`` for one release, with a FutureWarning."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> AnnData:
        from epiformer.models import EpiGePT

        if args and isinstance(args[0], EpiGePT):
            warn(
                "`ef.tl.variant_effect(model, variants, contexts=...)` is deprecated; call "
                "`ef.tl.variant_effect(contexts, model, variants=..., fasta=...)` (data first, model second).",
                FutureWarning,
            )
            model, rest = args[0], list(args[1:])
            if rest:
                kwargs["variants"] = rest.pop(0)
            if rest or "contexts" not in kwargs:
                msg = "The deprecated form is `variant_effect(model, variants, contexts=..., fasta=...)`."
                raise TypeError(msg)
            return func(kwargs.pop("contexts"), model, **kwargs)
        return func(*args, **kwargs)

    return wrapper


@_accept_old_order
def variant_effect(
    contexts: AnnData,
    model: EpiGePT,
    *,
    variants: pd.DataFrame | str | os.PathLike,
    fasta: Any,
    motifs: Mapping[str, Sequence[np.ndarray]] | None = None,
    flank_bins: int = 0,
    eps: float = 0.01,
    batch_size: int = 8,
    device: str = "auto",
    progress: bool = True,
) -> AnnData:
    """Score variants: log-ratio of predicted signal, alternative vs reference allele, per signal and context.

    Each variant gets a 128-kb window with its bin in the middle. The alternative allele changes the
    one-hot sequence *and* the motif scores of the bins whose motif windows it touches (re-scanned with
    the same motifs), since motif score x TF expression is an input too; the context vectors are fixed.
    The score is ``log((alt + eps) / (ref + eps))`` of the signal in linear units (``expm1`` of the
    model's ``log(count + 1)`` output), summed over the variant's bin and `flank_bins` bins each side.

    Parameters
    ----------
    contexts
        Contexts x TFs from :func:`epiformer.pp.tf_context`.
    model
        An :class:`~epiformer.models.EpiGePT`.
    variants
        One row per variant with `chrom`, `pos` (1-based), `ref` and `alt` (substitutions, e.g. SNVs);
        the index names them. Reference alleles must match the genome. Or a VCF file (``.vcf``, ``.vcf.gz``,
        ``.bcf``), read with :func:`epiformer.io.read_vcf` (which refuses indels; call it with
        ``indels="drop"`` first to skip them).
    fasta
        Reference genome: a FASTA path, an :class:`epiformer.io.Genome` or a genome segment.
    motifs
        TF -> probability matrices; `None` uses JASPAR. (Precomputed motif tables cannot re-score alleles.)
    flank_bins
        Bins on each side of the variant's bin added to the summed signal.
    eps
        Pseudo-count added to both alleles' signals before the ratio.
    batch_size
        Contexts per forward pass.
    device
        ``"auto"`` or a torch device.
    progress
        Show a progress bar over variants.

    Returns
    -------
    AnnData of variants x (context, signal):

    `X`
        The log-ratios.
    `layers['ref']`, `layers['alt']`
        Summed signal (linear units) with each allele.
    `obs`
        The variant table, plus `motif_delta`: the summed absolute change of motif scores the allele causes.
    `var`
        `context` and `signal` of each column, named ``context|signal``.
    `uns['epigept_variant_effect']`
        Settings, with `motif_source` (the re-scored motifs approximate the authors' HOMER features).
    """
    from epiformer.models.epigept import check_epigept, checkpoint_sha256, context_matrix, score_variants, variant_table

    with timed("ef.tl.variant_effect") as written:
        check_epigept(model)
        cfg = model.config
        if not 0 <= flank_bins <= cfg.n_bins // 2 or eps <= 0 or batch_size < 1:
            msg = (
                f"`flank_bins` must be in [0, {cfg.n_bins // 2}], `eps` > 0 and `batch_size` positive; got "
                f"{flank_bins}, {eps} and {batch_size}."
            )
            raise ValueError(msg)
        if isinstance(variants, str | os.PathLike):
            variants = read_vcf(variants)
        genome = Genome.open(fasta)
        table = variant_table(variants, genome)
        X, names = context_matrix(contexts, model)
        ref_sum, alt_sum, motif_delta = score_variants(
            model,
            table,
            X,
            genome=genome,
            tfs=names,
            motifs=motifs,
            flank_bins=flank_bins,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )

        n = len(table)
        var = pd.DataFrame(
            {
                Key.var.context: np.repeat([str(c) for c in contexts.obs_names], cfg.n_signals),
                Key.var.signal: np.tile(list(cfg.signals), X.shape[0]),
            }
        )
        var.index = [f"{c}|{s}" for c, s in zip(var[Key.var.context], var[Key.var.signal], strict=True)]
        obs = table.assign(**{Key.obs.motif_delta: motif_delta})
        out = AnnData(X=np.log((alt_sum + eps) / (ref_sum + eps)).reshape(n, -1).astype(np.float32), obs=obs, var=var)
        out.layers[Key.layers.ref_signal] = ref_sum.reshape(n, -1).astype(np.float32)
        out.layers[Key.layers.alt_signal] = alt_sum.reshape(n, -1).astype(np.float32)
        record_params(
            out,
            Key.uns.variant_effect,
            {
                "variant": cfg.variant,
                "checkpoint_sha256": checkpoint_sha256(model),
                "flank_bins": flank_bins,
                "eps": eps,
                "motif_source": motif_provenance(None, motifs),
            },
            outputs={"X": out.X, **{f"layers[{k!r}]": out.layers[k] for k in out.layers}},
        )
        written += ["X", f"layers[{Key.layers.ref_signal!r}]", f"layers[{Key.layers.alt_signal!r}]"]
        written.append(f"uns[{Key.uns.variant_effect!r}]")
    return out
