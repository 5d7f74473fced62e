"""Variant effects with EpiGePT: reference vs alternative allele, re-scoring the motifs around the allele."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._sequence import encode
from epiformer._utils import progress_bar, record_params, resolve_device
from epiformer._validation import _first
from epiformer.io import Genome
from epiformer.pp._motifs import MotifScanner, jaspar_motifs
from epiformer.tl._epigenome import check_model, context_matrix, predict_window

if TYPE_CHECKING:
    from epiformer.models import EpiGePT


def _check_variants(variants: Any) -> pd.DataFrame:
    if not isinstance(variants, pd.DataFrame):
        msg = "`variants` must be a DataFrame with columns chrom, pos (1-based), ref and alt."
        raise TypeError(msg)
    missing = {Key.obs.chrom, Key.obs.pos, Key.obs.ref, Key.obs.alt} - set(variants.columns)
    if missing:
        msg = f"`variants` lacks columns {sorted(missing)}; it needs chrom, pos (1-based), ref and alt."
        raise ValueError(msg)
    table = variants.copy()
    table.index = table.index.astype(str)
    if table.index.has_duplicates:
        table.index = [
            f"{c}:{p}:{r}>{a}" for c, p, r, a in table[["chrom", "pos", "ref", "alt"]].itertuples(index=False)
        ]
    for col in (Key.obs.ref, Key.obs.alt):
        table[col] = table[col].astype(str).str.upper()
    bad = [
        i
        for i, r, a in zip(table.index, table[Key.obs.ref], table[Key.obs.alt], strict=True)
        if len(r) != len(a) or not r or set(r + a) - set("ACGT") or r == a
    ]
    if bad:
        msg = (
            f"{len(bad)} variants are not substitutions of A/C/G/T bases ({_first(bad)}): ref and alt must be "
            "different and of equal length (indels shift the window and are not scored)."
        )
        raise ValueError(msg)
    table[Key.obs.pos] = table[Key.obs.pos].astype(np.int64)
    return table


def variant_effect(
    model: EpiGePT,
    variants: pd.DataFrame,
    *,
    contexts: AnnData,
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
    model
        An :class:`~epiformer.models.EpiGePT`.
    variants
        One row per variant with `chrom`, `pos` (1-based), `ref` and `alt` (substitutions, e.g. SNVs);
        the index names them. Reference alleles must match the genome.
    contexts
        Contexts x TFs from :func:`epiformer.pp.tf_context`.
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
        Settings.
    """
    import torch

    check_model(model)
    table = _check_variants(variants)
    X, names = context_matrix(contexts, model)
    if flank_bins < 0 or eps <= 0:
        msg = f"`flank_bins` must be >= 0 and `eps` > 0, got {flank_bins} and {eps}."
        raise ValueError(msg)
    genome = Genome.open(fasta)
    cfg = model.config
    bs, n_bins = cfg.bin_size, cfg.n_bins
    scanner = MotifScanner(motifs if motifs is not None else jaspar_motifs(tfs=names), names, bin_size=bs)
    margin = scanner.margin
    mid = n_bins // 2
    if flank_bins > mid:
        msg = f"`flank_bins` must be at most {mid}."
        raise ValueError(msg)
    mismatched = []
    for name, chrom, pos, ref in table[[Key.obs.chrom, Key.obs.pos, Key.obs.ref]].itertuples(name=None):
        found = genome.fetch(chrom, pos, pos + len(ref) - 1, pad=True)
        if not np.array_equal(found, encode(ref)):
            mismatched.append(f"{name} (genome {''.join('ACGTN'[c] for c in found)}, ref {ref})")
    if mismatched:
        msg = f"{len(mismatched)} reference alleles do not match the genome: {_first(mismatched)}. Is it the model's build?"
        raise ValueError(msg)

    device = resolve_device(device)
    was_training = model.training
    original = next(model.parameters()).device
    model.eval().to(device)
    contexts_t = torch.from_numpy(X).to(device)
    n_ctx, n_sig = X.shape[0], cfg.n_signals
    ref_sum = np.zeros((len(table), n_ctx, n_sig), dtype=np.float64)
    alt_sum = np.zeros_like(ref_sum)
    motif_delta = np.zeros(len(table))
    keep = slice(mid - flank_bins, mid + flank_bins + 1)
    try:
        rows = table[[Key.obs.chrom, Key.obs.pos, Key.obs.alt]].itertuples(index=False, name=None)
        for i, (chrom, pos, alt) in enumerate(progress_bar(list(rows), desc="variants", disable=not progress)):
            first = (pos - 1) // bs - mid
            lo = first * bs + 1 - margin
            codes = genome.fetch(chrom, lo, (first + n_bins) * bs + margin, pad=True)
            ref_motif = scanner.scan_codes(codes)
            alt_codes = codes.copy()
            alt_codes[pos - lo : pos - lo + len(alt)] = encode(alt)
            # bins whose motif windows can hold a motif overlapping the allele; re-scan just those
            reach = scanner.flank + scanner.max_length
            b0 = max(0, (pos - reach - 1) // bs - first)
            b1 = min(n_bins - 1, (pos + len(alt) - 1 + reach - 1) // bs - first)
            alt_motif = ref_motif.copy()
            local = scanner.scan_codes(alt_codes[b0 * bs : (b1 + 1) * bs + 2 * margin])
            # unchanged bins keep the full-window values exactly (a shorter scan may round differently)
            same = np.isclose(local, ref_motif[b0 : b1 + 1], rtol=0, atol=1e-4)
            alt_motif[b0 : b1 + 1] = np.where(same, ref_motif[b0 : b1 + 1], local)
            motif_delta[i] = float(np.abs(alt_motif - ref_motif).sum())
            inner = slice(margin, margin + n_bins * bs)
            pred_ref = predict_window(model, codes[inner], ref_motif, contexts_t, batch_size)
            pred_alt = predict_window(model, alt_codes[inner], alt_motif, contexts_t, batch_size)
            ref_sum[i] = np.expm1(pred_ref[:, keep].astype(np.float64)).sum(axis=1)
            alt_sum[i] = np.expm1(pred_alt[:, keep].astype(np.float64)).sum(axis=1)
    finally:
        model.to(original).train(was_training)

    score = np.log((alt_sum + eps) / (ref_sum + eps))
    contexts_names = [str(c) for c in contexts.obs_names]
    var = pd.DataFrame(
        {
            Key.var.context: np.repeat(contexts_names, n_sig),
            Key.var.signal: np.tile(list(cfg.signals), n_ctx),
        }
    )
    var.index = [f"{c}|{s}" for c, s in zip(var[Key.var.context], var[Key.var.signal], strict=True)]
    obs = table.copy()
    obs[Key.obs.motif_delta] = motif_delta
    out = AnnData(X=score.reshape(len(table), -1).astype(np.float32), obs=obs, var=var)
    out.layers[Key.layers.ref_signal] = ref_sum.reshape(len(table), -1).astype(np.float32)
    out.layers[Key.layers.alt_signal] = alt_sum.reshape(len(table), -1).astype(np.float32)
    record_params(
        out,
        Key.uns.variant_effect,
        {
            "variant": cfg.variant,
            "checkpoint_sha256": model.checkpoint_info.get("sha256") or model.checkpoint_info.get("source_sha256"),
            "flank_bins": flank_bins,
            "eps": eps,
            "motifs": "user-supplied" if motifs is not None else "JASPAR2024",
        },
    )
    return out
