"""TF motif scores per genomic bin: JASPAR motifs (through pyjaspar) scanned with a torch convolution.

EpiGePT reads, for every 128-bp bin and TF, the best motif log-odds score of that TF near the bin. The
authors computed it with HOMER (``findMotifsGenome.pl -find``, 1,465 motifs mapped to 711 TFs, which they
have not released); this module is an approximation of those scores: the same quantity (maximum log-odds
over the motifs of a TF, 0 without a hit) from JASPAR position-probability matrices scanned on both
strands, hits called at a FIMO-style p-value, over each bin widened to HOMER's default 200-bp window.
A checkpoint trained on HOMER scores will see slightly different inputs; precomputed HOMER matrices can
be passed instead wherever motif scores are taken.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._sequence import bin_frame, bin_range, one_hot, parse_regions
from epiformer._utils import record_params
from epiformer._validation import check_unique, first_items
from epiformer.io import Genome

if TYPE_CHECKING:
    import torch

#: Pseudocount added to JASPAR counts (spread evenly over the four bases), as Biopython / JASPAR tools do.
JASPAR_PSEUDOCOUNT = 0.8
_LENGTH_BUCKETS = (8, 11, 14, 18, 24, 40)
_SCORE_RESOLUTION = 0.05
_CHUNK_ELEMENTS = 1 << 24  # conv outputs per chunk (64 MB of float32)


def tf_list(tfs: Any) -> list[str]:
    """TF names from a list or from a model carrying them (``model.tf_names``)."""
    names = getattr(tfs, "tf_names", tfs)
    if names is None:
        msg = (
            "The TF list is unknown: the model does not carry its TF names (the published checkpoints do not). "
            "Pass `tf_names=` to `EpiGePT.from_pretrained`, or give the TF names in checkpoint order."
        )
        raise ValueError(msg)
    if isinstance(names, str):
        msg = "TF names must be a list of names, not one string."
        raise TypeError(msg)
    names = [str(t) for t in names]
    check_unique(names, what="TF names")
    return names


@functools.cache
def _jaspar_records(release: str, collection: str, tax_group: str | None) -> tuple[tuple[str, str, np.ndarray], ...]:
    from pyjaspar import jaspardb

    db = jaspardb(release=release)
    motifs = db.fetch_motifs(collection=collection, tax_group=[tax_group] if tax_group else None)
    out = []
    for motif in motifs:
        counts = np.array([motif.counts[b] for b in "ACGT"], dtype=np.float64).T
        ppm = (counts + JASPAR_PSEUDOCOUNT / 4) / (counts.sum(axis=1, keepdims=True) + JASPAR_PSEUDOCOUNT)
        ppm.setflags(write=False)
        out.append((motif.matrix_id, motif.name, ppm))
    return tuple(out)


def jaspar_motifs(
    *,
    tfs: Sequence[str] | Any | None = None,
    release: str = "JASPAR2024",
    collection: str = "CORE",
    tax_group: str | None = "vertebrates",
) -> dict[str, list[np.ndarray]]:
    """Position-probability matrices of JASPAR motifs by TF, from the databases bundled with :mod:`pyjaspar`.

    Works offline. Heterodimer motifs (``FOS::JUN``) count for each partner, as the authors' motif-to-TF
    table maps one motif to several TFs. Names are matched case-insensitively (JASPAR spells mouse
    orthologues ``Pou5f1``).

    Parameters
    ----------
    tfs
        Keep only these TFs (a list, or a model with `tf_names`); the keys are then spelled as given.
        `None` returns every TF of the collection under upper-case names.
    release
        JASPAR release bundled with pyjaspar (``"JASPAR2024"``, ``"JASPAR2026"``, ...).
    collection
        JASPAR collection.
    tax_group
        Taxonomic group (``"vertebrates"``); `None` for all.

    Returns
    -------
    A dict TF name -> list of ``(length, 4)`` probability matrices (columns A, C, G, T; pseudocount 0.8).
    TFs without a motif are absent.
    """
    from pyjaspar import jaspardb

    releases = jaspardb().get_releases()
    if release not in releases:
        msg = f"JASPAR release {release!r} is not bundled with pyjaspar; choose one of {releases}."
        raise ValueError(msg)
    by_tf: dict[str, list[np.ndarray]] = {}
    for _, name, ppm in _jaspar_records(release, collection, tax_group):
        for part in name.split("::"):
            by_tf.setdefault(part.upper(), []).append(ppm)
    if tfs is None:
        return dict(sorted(by_tf.items()))
    return {tf: by_tf[tf.upper()] for tf in tf_list(tfs) if tf.upper() in by_tf}


def _pvalue_threshold(log_odds: np.ndarray, pvalue: float) -> float:
    """Smallest score reached by a uniform random sequence with probability <= `pvalue` (exact on a 0.05 grid)."""
    ints = np.round(log_odds / _SCORE_RESOLUTION).astype(np.int64)
    low = ints.min(axis=1)
    shifted = ints - low[:, None]
    dist = np.ones(1)
    for row in shifted:
        new = np.zeros(dist.size + row.max())
        for value in row:
            new[value : value + dist.size] += 0.25 * dist
        dist = new
    tail = np.cumsum(dist[::-1])[::-1]  # P(score >= index)
    index = int(np.argmax(tail <= pvalue)) if tail[-1] <= pvalue else dist.size - 1
    return (index + low.sum()) * _SCORE_RESOLUTION


class MotifScanner:
    """Best motif log-odds score per TF and bin, from position-probability matrices, in torch.

    Each matrix becomes a log-odds filter (natural log, uniform background); a ``conv1d`` over one-hot DNA
    scores every position on both strands; a hit counts where its score reaches the matrix's p-value
    threshold; a bin's score for a TF is the best hit of any of its motifs centred within `flank` bp of
    the bin, else 0.

    Parameters
    ----------
    motifs
        TF name -> list of ``(length, 4)`` matrices (A, C, G, T), e.g. :func:`jaspar_motifs`.
    tfs
        Output TFs, in order; names are matched case-insensitively; TFs without a motif score 0.
    bin_size
        Bin width in bp.
    flank
        Bases added on each side of a bin (36 gives HOMER's default 200-bp window around a 128-bp bin).
    pvalue
        Hit threshold of each matrix under a uniform background (FIMO's default 1e-4).
    device
        Torch device for the convolutions.
    """

    def __init__(
        self,
        motifs: Mapping[str, Sequence[np.ndarray]],
        tfs: Sequence[str],
        *,
        bin_size: int = 128,
        flank: int = 36,
        pvalue: float = 1e-4,
        device: str | torch.device = "cpu",
    ) -> None:
        import torch

        if not 0 < pvalue < 1:
            msg = f"`pvalue` must be in (0, 1), got {pvalue}."
            raise ValueError(msg)
        self.tfs = list(tfs)
        self.bin_size, self.flank, self.pvalue = int(bin_size), int(flank), float(pvalue)
        self.device = torch.device(device)
        lookup = {str(name).upper(): mats for name, mats in motifs.items()}
        matrices: list[np.ndarray] = []
        seen: dict[bytes, int] = {}
        pairs: list[tuple[int, int]] = []
        self.n_motifs = np.zeros(len(self.tfs), dtype=np.int64)
        for j, tf in enumerate(self.tfs):
            for ppm in lookup.get(tf.upper(), []):
                ppm = np.asarray(ppm, dtype=np.float64)
                if ppm.ndim != 2 or ppm.shape[1] != 4 or ppm.shape[0] < 1 or (ppm < 0).any():
                    msg = f"Motif of {tf!r} must be a (length, 4) non-negative matrix (A, C, G, T), got {ppm.shape}."
                    raise ValueError(msg)
                key = ppm.tobytes() + bytes(str(ppm.shape), "ascii")
                if key not in seen:
                    seen[key] = len(matrices)
                    matrices.append(ppm)
                pairs.append((seen[key], j))
                self.n_motifs[j] += 1
        self.max_length = max((m.shape[0] for m in matrices), default=1)
        self.margin = self.flank + self.max_length
        self._buckets = []
        lengths = np.array([m.shape[0] for m in matrices])
        edges = (0, *_LENGTH_BUCKETS[:-1], max(_LENGTH_BUCKETS[-1], self.max_length))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            members = np.flatnonzero((lengths > lo) & (lengths <= hi))
            if members.size == 0:
                continue
            width = int(lengths[members].max())
            kernel = np.zeros((members.size, 4, width), dtype=np.float32)
            thresholds = np.empty(members.size, dtype=np.float32)
            for row, index in enumerate(members):
                ppm = matrices[index]
                ppm = ppm / ppm.sum(axis=1, keepdims=True)
                log_odds = np.log(np.clip(ppm, 1e-4, None) / 0.25)
                offset = (width - log_odds.shape[0]) // 2
                kernel[row, :, offset : offset + log_odds.shape[0]] = log_odds.T
                thresholds[row] = _pvalue_threshold(log_odds, self.pvalue)
            weight = torch.from_numpy(kernel)
            both = torch.cat([weight, weight.flip(1, 2)])  # reverse complement: A<->T, C<->G and reversed
            local = {int(m): r for r, m in enumerate(members)}
            sel = [(local[m], tf) for m, tf in pairs if m in local]
            self._buckets.append(
                {
                    "weight": both.to(self.device),
                    "width": width,
                    "threshold": torch.from_numpy(thresholds).to(self.device),
                    "rows": torch.tensor([r for r, _ in sel], dtype=torch.long, device=self.device),
                    "tfs": torch.tensor([t for _, t in sel], dtype=torch.long, device=self.device),
                }
            )
        self._n_filters = 2 * len(matrices)

    @property
    def tfs_without_motif(self) -> list[str]:
        """Output TFs that have no motif (their score is always 0)."""
        return [tf for tf, n in zip(self.tfs, self.n_motifs, strict=True) if n == 0]

    def scan_codes(self, codes: np.ndarray) -> np.ndarray:
        """Scores ``(n_bins, n_tfs)`` of base codes covering whole bins plus `margin` bases on each side."""
        import torch
        import torch.nn.functional as F

        n_bins, rest = divmod(codes.shape[0] - 2 * self.margin, self.bin_size)
        if n_bins < 1 or rest:
            msg = f"Expected {self.margin} + k * {self.bin_size} + {self.margin} bases, got {codes.shape[0]}."
            raise ValueError(msg)
        out = torch.zeros(len(self.tfs), n_bins, device=self.device)
        if not self._buckets:
            return out.T.cpu().numpy()
        x = torch.from_numpy(one_hot(codes).T.copy()).to(self.device)[None]
        span = n_bins * self.bin_size + 2 * self.flank
        with torch.inference_mode():
            for bucket in self._buckets:
                start = self.margin - self.flank - bucket["width"] // 2
                scores = F.conv1d(x[..., start : start + span + bucket["width"] - 1], bucket["weight"])
                pooled = F.max_pool1d(scores, kernel_size=self.bin_size + 2 * self.flank, stride=self.bin_size)[0]
                pooled = pooled.view(2, -1, n_bins).amax(0)
                pooled = torch.where(pooled >= bucket["threshold"][:, None], pooled, 0.0)
                index = bucket["tfs"][:, None].expand(-1, n_bins)
                out.scatter_reduce_(0, index, pooled[bucket["rows"]], reduce="amax", include_self=True)
        return out.T.cpu().numpy()

    def scan(self, genome: Genome, chrom: str, first_bin: int, n_bins: int) -> np.ndarray:
        """Scores ``(n_bins, n_tfs)`` of bins ``first_bin ..`` of `chrom` (sequence past the ends reads as N)."""
        step = max(1, _CHUNK_ELEMENTS // max(1, self._n_filters * self.bin_size))
        out = np.empty((n_bins, len(self.tfs)), dtype=np.float32)
        for offset in range(0, n_bins, step):
            size = min(step, n_bins - offset)
            lo = (first_bin + offset) * self.bin_size + 1 - self.margin
            hi = (first_bin + offset + size) * self.bin_size + self.margin
            out[offset : offset + size] = self.scan_codes(genome.fetch(chrom, lo, hi, pad=True))
        return out


def motif_scores(
    regions: Any,
    *,
    fasta: Any,
    tfs: Sequence[str] | Any,
    motifs: Mapping[str, Sequence[np.ndarray]] | None = None,
    bin_size: int = 128,
    flank: int = 36,
    pvalue: float = 1e-4,
    device: str = "cpu",
) -> AnnData:
    """Motif score of every TF in every bin of some regions: EpiGePT's sequence-side TF input.

    An approximation of the authors' HOMER scores (see :class:`MotifScanner`): the best log-odds score of
    a TF's motifs around each 128-bp bin, 0 without a hit. Bins are laid on a fixed genome grid (bin k
    holds positions ``128 k + 1 .. 128 (k + 1)``), so regions are widened to whole bins.

    Parameters
    ----------
    regions
        ``"chr22:20000001-20500000"`` (1-based, inclusive), a list of them, or a DataFrame with `chrom`,
        `start`, `end`.
    fasta
        Reference genome: a FASTA path, an :class:`epiformer.io.Genome`, or a segment such as
        :func:`epiformer.datasets.hg19_chr22_segment`.
    tfs
        TF names in output order, or a model carrying them (``model.tf_names``).
    motifs
        TF -> list of ``(length, 4)`` probability matrices; `None` uses :func:`jaspar_motifs` (JASPAR 2024
        CORE vertebrates).
    bin_size
        Bin width in bp (128 for EpiGePT).
    flank
        Bases around each bin where motif centres count (36: HOMER's 200-bp window).
    pvalue
        Per-motif hit threshold.
    device
        Torch device for the scan.

    Returns
    -------
    AnnData of bins x TFs: `X` the scores (float32), `obs` `chrom` / `start` / `end` / `region`, `var`
    `n_motifs` (motifs per TF; TFs with none score 0), `uns['motif_scores']['params']` the settings.
    """
    names = tf_list(tfs)
    spans = parse_regions(regions)
    genome = Genome.open(fasta)
    source = "JASPAR2024 CORE vertebrates (pyjaspar)" if motifs is None else "user-supplied"
    if motifs is None:
        motifs = jaspar_motifs(tfs=names)
    scanner = MotifScanner(motifs, names, bin_size=bin_size, flank=flank, pvalue=pvalue, device=device)
    frames, blocks = [], []
    for chrom, start, end in spans:
        first, n = bin_range(start, end, bin_size)
        frame = bin_frame(chrom, first, n, bin_size)
        frame[Key.var.region] = f"{chrom}:{start}-{end}"
        frames.append(frame)
        blocks.append(scanner.scan(genome, chrom, first, n))
    obs = pd.concat(frames)
    if obs.index.has_duplicates:
        msg = f"The regions overlap (bins {first_items(list(obs.index[obs.index.duplicated()]))} repeat); merge them first."
        raise ValueError(msg)
    adata = AnnData(X=np.concatenate(blocks), obs=obs, var=pd.DataFrame(index=pd.Index(names)))
    adata.var[Key.var.n_motifs] = scanner.n_motifs
    record_params(
        adata,
        Key.uns.motif_scores,
        {"bin_size": bin_size, "flank": flank, "pvalue": pvalue, "motifs": source},
    )
    return adata
