"""EpiGePT inference on AnnData: context vectors, motif features, window tiling over regions, variant scoring.

Everything here works on arrays and :class:`~anndata.AnnData` inputs and returns arrays or tables; the
:mod:`epiformer.tl` verbs validate their arguments, call these functions and write the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._sequence import bin_frame, bin_range, encode, normalize_chrom, one_hot
from epiformer._utils import progress_bar, to_dense_float
from epiformer._validation import first_items
from epiformer.io import Genome
from epiformer.models._base import check_model, on_device
from epiformer.models.epigept._config import EpiGePTConfig
from epiformer.models.epigept._module import EpiGePT
from epiformer.pp import MotifScanner, jaspar_motifs

#: Windows whose sequence and motif scores are read in one go.
WINDOWS_PER_BLOCK = 16


def check_epigept(model: Any) -> None:
    """Raise a :class:`TypeError` unless `model` is an :class:`EpiGePT`."""
    check_model(model, EpiGePT, how="load one with `ef.models.EpiGePT.from_pretrained(path)`")


def checkpoint_sha256(model: EpiGePT) -> str | None:
    """The sha256 of the file the weights were loaded from (or, failing that, of the file they came from)."""
    return model.checkpoint.get("sha256") or model.checkpoint.get("source_sha256")


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
                    f"The contexts lack {len(missing)} of the model's {len(names)} TFs ({first_items(missing)}); build "
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
    """Motif scores looked up from a bins x TFs AnnData (as :func:`epiformer.pp.motif_scores` returns).

    Parameters
    ----------
    scores
        Bins x TFs with `obs` columns `chrom` and `start` on the `bin_size` grid.
    tfs
        The TFs to return, in this order.
    bin_size
        Base pairs per bin.
    """

    def __init__(self, scores: AnnData, tfs: Sequence[str], bin_size: int) -> None:
        if not isinstance(scores, AnnData) or not {Key.var.chrom, Key.var.start} <= set(scores.obs.columns):
            msg = "`motif_scores` must be an AnnData of bins x TFs with `obs` columns chrom and start (see `ef.pp.motif_scores`)."
            raise ValueError(msg)
        position = {str(v).upper(): i for i, v in enumerate(scores.var_names)}
        missing = [t for t in tfs if t.upper() not in position]
        if missing:
            msg = f"`motif_scores` lacks {len(missing)} of the model's TFs: {first_items(missing)}."
            raise ValueError(msg)
        starts = scores.obs[Key.var.start].to_numpy(dtype=np.int64)
        if ((starts - 1) % bin_size).any():
            msg = (
                f"`motif_scores` bins must start at {bin_size} k + 1 (the {bin_size}-bp grid of `ef.pp.motif_scores`)."
            )
            raise ValueError(msg)
        self.values = to_dense_float(scores.X)[:, [position[t.upper()] for t in tfs]]
        chroms = [normalize_chrom(c) for c in scores.obs[Key.var.chrom].astype(str)]
        self.rows = {(c, int(s - 1) // bin_size): i for i, (c, s) in enumerate(zip(chroms, starts, strict=True))}
        self.n_missing = 0

    def scan(self, genome: Genome, chrom: str, first_bin: int, n_bins: int) -> np.ndarray:
        """Scores ``(n_bins, n_tfs)`` of bins ``first_bin ..`` (0 where the table has no row)."""
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
        warn(
            f"{len(absent)} of {len(tfs)} TFs have no motif ({first_items(absent)}); their motif scores are 0.",
            UserWarning,
        )
    return scanner


def predict_window(
    model: EpiGePT, codes: np.ndarray, motif: np.ndarray, contexts: torch.Tensor, batch_size: int
) -> np.ndarray:
    """Signals ``(n_contexts, n_bins, n_signals)`` of one window: sequence codes, motif scores, context vectors.

    The sequence embedding is computed once and shared by every batch of contexts.
    """
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


@dataclass(frozen=True)
class Tiling:
    """How regions are tiled with overlapping windows whose centres are kept.

    Attributes
    ----------
    var
        One row per predicted bin: `chrom`, `start`, `end` (1-based, inclusive) and `region`.
    spans
        Per region: chromosome, first bin, number of bins and number of windows.
    crop
        Bins dropped at each end of a window.
    keep
        Bins kept from each window's centre (the step between windows).
    """

    var: pd.DataFrame
    spans: list[tuple[str, int, int, int]]
    crop: int
    keep: int

    @property
    def n_windows(self) -> int:
        """Windows the tiling runs."""
        return sum(span[-1] for span in self.spans)


def tile_regions(config: EpiGePTConfig, regions: Sequence[tuple[str, int, int]], *, crop: int | None) -> Tiling:
    """Tile ``(chrom, start, end)`` regions (1-based, inclusive) with the model's windows.

    Each window keeps only its centre (`crop` bins are dropped on both sides; default a quarter of the
    window) and consecutive windows step by the kept width, so every bin is predicted exactly once.
    """
    crop = config.n_bins // 4 if crop is None else int(crop)
    keep = config.n_bins - 2 * crop
    if crop < 0 or keep < 1:
        msg = (
            f"`crop` must be between 0 and {(config.n_bins - 1) // 2} bins for a {config.n_bins}-bin window, "
            f"got {crop}."
        )
        raise ValueError(msg)
    spans, frames = [], []
    for chrom, start, end in regions:
        first, n = bin_range(start, end, config.bin_size)
        spans.append((chrom, first, n, math.ceil(n / keep)))
        frames.append(bin_frame(chrom, first, n, config.bin_size).assign(**{Key.var.region: f"{chrom}:{start}-{end}"}))
    var = pd.concat(frames)
    if var.index.has_duplicates:
        msg = f"The regions overlap (bins {first_items(list(var.index[var.index.duplicated()]))} repeat); merge them first."
        raise ValueError(msg)
    return Tiling(var=var, spans=spans, crop=crop, keep=keep)


def predict_tiles(
    model: EpiGePT,
    tiling: Tiling,
    contexts: np.ndarray,
    *,
    genome: Genome,
    source: MotifScanner | PrecomputedMotifs,
    batch_size: int,
    device: str | torch.device,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Run every window of `tiling` for every context.

    Returns
    -------
    The signals ``(n_contexts, n_bins, n_signals)`` of the bins of ``tiling.var``, and the window each
    bin was taken from.
    """
    cfg, bs, crop, keep = model.config, model.config.bin_size, tiling.crop, tiling.keep
    values = np.zeros((contexts.shape[0], len(tiling.var), cfg.n_signals), dtype=np.float32)
    window_ids = np.zeros(len(tiling.var), dtype=np.int64)
    column, window_id = 0, 0
    with (
        on_device(model, device) as target,
        progress_bar(total=tiling.n_windows, desc="EpiGePT windows", unit="window", disable=not progress) as bar,
    ):
        contexts_t = torch.from_numpy(contexts).to(target)
        for chrom, first, n, n_windows in tiling.spans:
            for block in range(0, n_windows, WINDOWS_PER_BLOCK):
                count = min(WINDOWS_PER_BLOCK, n_windows - block)
                span_first = first + block * keep - crop
                span_bins = (count - 1) * keep + cfg.n_bins
                motif = source.scan(genome, chrom, span_first, span_bins)
                codes = genome.fetch(chrom, span_first * bs + 1, (span_first + span_bins) * bs, pad=True)
                for w in range(count):
                    lo = w * keep
                    window_codes = codes[lo * bs : (lo + cfg.n_bins) * bs]
                    pred = predict_window(model, window_codes, motif[lo : lo + cfg.n_bins], contexts_t, batch_size)
                    done = (block + w) * keep
                    take = min(keep, n - done)
                    values[:, column + done : column + done + take] = pred[:, crop : crop + take]
                    window_ids[column + done : column + done + take] = window_id
                    window_id += 1
                    bar.update()
            column += n
    if isinstance(source, PrecomputedMotifs) and source.n_missing:
        warn(
            f"`motif_scores` had no row for {source.n_missing} bins of the prediction windows; they scored 0.",
            UserWarning,
        )
    return values, window_ids


def variant_table(variants: Any, genome: Genome) -> pd.DataFrame:
    """A checked copy of `variants` (`chrom`, `pos`, `ref`, `alt`).

    Names are made unique, alleles upper-case; every variant must be a substitution whose reference allele
    matches `genome`.
    """
    if not isinstance(variants, pd.DataFrame):
        msg = "`variants` must be a DataFrame with columns chrom, pos (1-based), ref and alt."
        raise TypeError(msg)
    missing = {Key.obs.chrom, Key.obs.pos, Key.obs.ref, Key.obs.alt} - set(variants.columns)
    if missing:
        msg = f"`variants` lacks columns {sorted(missing)}; it needs chrom, pos (1-based), ref and alt."
        raise ValueError(msg)
    table = variants.copy()
    table.index = table.index.astype(str)
    columns = [Key.obs.chrom, Key.obs.pos, Key.obs.ref, Key.obs.alt]
    if table.index.has_duplicates:
        table.index = [f"{c}:{p}:{r}>{a}" for c, p, r, a in table[columns].itertuples(index=False)]
    for col in (Key.obs.ref, Key.obs.alt):
        table[col] = table[col].astype(str).str.upper()
    bad = [
        i
        for i, r, a in zip(table.index, table[Key.obs.ref], table[Key.obs.alt], strict=True)
        if len(r) != len(a) or not r or set(r + a) - set("ACGT") or r == a
    ]
    if bad:
        msg = (
            f"{len(bad)} variants are not substitutions of A/C/G/T bases ({first_items(bad)}): ref and alt must be "
            "different and of equal length (indels shift the window and are not scored)."
        )
        raise ValueError(msg)
    table[Key.obs.pos] = table[Key.obs.pos].astype(np.int64)
    mismatched = []
    for name, chrom, pos, ref in table[columns[:3]].itertuples(name=None):
        found = genome.fetch(chrom, pos, pos + len(ref) - 1, pad=True)
        if not np.array_equal(found, encode(ref)):
            mismatched.append(f"{name} (genome {''.join('ACGTN'[c] for c in found)}, ref {ref})")
    if mismatched:
        msg = f"{len(mismatched)} reference alleles do not match the genome: {first_items(mismatched)}. Is it the model's build?"
        raise ValueError(msg)
    return table


def score_variants(
    model: EpiGePT,
    table: pd.DataFrame,
    contexts: np.ndarray,
    *,
    genome: Genome,
    tfs: Sequence[str],
    motifs: Mapping[str, Sequence[np.ndarray]] | None,
    flank_bins: int,
    batch_size: int,
    device: str | torch.device,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict both alleles of every variant of `table` (see :func:`variant_table`) in a window centred on it.

    The alternative allele changes the one-hot sequence and the motif scores of the bins whose motif
    windows it touches (re-scanned with the same `motifs` of `tfs`; JASPAR for `None`).

    Returns
    -------
    The signal in linear units (``expm1`` of the output) summed over the variant's bin and `flank_bins`
    bins each side, ``(n_variants, n_contexts, n_signals)`` with the reference and with the alternative
    allele, and the summed absolute change of motif scores of each variant.
    """
    cfg = model.config
    scanner = MotifScanner(motifs if motifs is not None else jaspar_motifs(tfs=tfs), tfs, bin_size=cfg.bin_size)
    bs, n_bins, margin, mid = cfg.bin_size, cfg.n_bins, scanner.margin, cfg.n_bins // 2
    ref_sum = np.zeros((len(table), contexts.shape[0], cfg.n_signals), dtype=np.float64)
    alt_sum = np.zeros_like(ref_sum)
    motif_delta = np.zeros(len(table))
    keep = slice(mid - flank_bins, mid + flank_bins + 1)
    inner = slice(margin, margin + n_bins * bs)
    # bins whose motif windows can hold a motif overlapping the allele are re-scanned
    reach = scanner.flank + scanner.max_length
    rows = list(table[[Key.obs.chrom, Key.obs.pos, Key.obs.alt]].itertuples(index=False, name=None))
    with on_device(model, device) as target:
        contexts_t = torch.from_numpy(contexts).to(target)
        for i, (chrom, pos, alt) in enumerate(progress_bar(rows, desc="variants", disable=not progress)):
            first = (pos - 1) // bs - mid
            lo = first * bs + 1 - margin
            codes = genome.fetch(chrom, lo, (first + n_bins) * bs + margin, pad=True)
            ref_motif = scanner.scan_codes(codes)
            alt_codes = codes.copy()
            alt_codes[pos - lo : pos - lo + len(alt)] = encode(alt)
            b0 = max(0, (pos - reach - 1) // bs - first)
            b1 = min(n_bins - 1, (pos + len(alt) - 1 + reach - 1) // bs - first)
            alt_motif = ref_motif.copy()
            local = scanner.scan_codes(alt_codes[b0 * bs : (b1 + 1) * bs + 2 * margin])
            # unchanged bins keep the full-window values exactly (a shorter scan may round differently)
            same = np.isclose(local, ref_motif[b0 : b1 + 1], rtol=0, atol=1e-4)
            alt_motif[b0 : b1 + 1] = np.where(same, ref_motif[b0 : b1 + 1], local)
            motif_delta[i] = float(np.abs(alt_motif - ref_motif).sum())
            pred_ref = predict_window(model, codes[inner], ref_motif, contexts_t, batch_size)
            pred_alt = predict_window(model, alt_codes[inner], alt_motif, contexts_t, batch_size)
            ref_sum[i] = np.expm1(pred_ref[:, keep].astype(np.float64)).sum(axis=1)
            alt_sum[i] = np.expm1(pred_alt[:, keep].astype(np.float64)).sum(axis=1)
    return ref_sum, alt_sum, motif_delta
