"""TF motif scores per genomic bin: HOMER or JASPAR motifs scanned with a torch convolution.

EpiGePT reads, for every 128-bp bin and TF, the best motif log-odds score of that TF near the bin. The
authors computed it with HOMER (``findMotifsGenome.pl -find``, 1,465 motifs mapped to 711 TFs, released
only on their web server). Given that HOMER library and its motif-to-TF table, :func:`motif_scores`
reproduces HOMER's scan (its log-odds, thresholds and 200-bp window). Without it, JASPAR
position-probability matrices (through pyjaspar) approximate the same quantity: maximum log-odds over the
motifs of a TF, 0 without a hit, both strands, hits called at a FIMO-style p-value, over each bin widened
to about HOMER's default window. A checkpoint trained on HOMER scores sees slightly different inputs from
the approximation; ``uns['motif_scores']['params']['motif_source']`` says which one was used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._sequence import bin_frame, bin_range, one_hot, parse_regions
from epiformer._utils import record_params
from epiformer._validation import check_choice, check_unique, first_items
from epiformer.io import Genome, HomerMotif, read_homer_motifs, read_motif_to_tf

if TYPE_CHECKING:
    import torch

#: Pseudocount added to JASPAR counts (spread evenly over the four bases), as Biopython / JASPAR tools do.
JASPAR_PSEUDOCOUNT = 0.8
_LENGTH_BUCKETS = (8, 11, 14, 18, 24, 40)
_SCORE_RESOLUTION = 0.05
_CHUNK_ELEMENTS = 1 << 24  # conv outputs per chunk (64 MB of float32)
#: HOMER's floor on motif probabilities before taking logs (``MOTIF_PROBABILITY_MINIMUM`` in ``Motif2.h``).
HOMER_PROBABILITY_MINIMUM = 0.001
#: ``findMotifsGenome.pl``'s default ``-size``.
HOMER_WINDOW = 200
_N_PENALTY = -1.0e4  # weight of the N channel in HOMER filters: any site over an N falls far below any threshold


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


def homer_flanks(window: int, bin_size: int) -> tuple[int, int]:
    """Bases HOMER's ``-size window`` region reaches left and right of a bin (negative: inside the bin).

    ``findMotifsGenome.pl`` turns a BED bin into a 1-based region ``start + 1 .. end``, takes its centre
    ``c = (start + end) / 2`` and extracts ``floor(c - window / 2) .. floor(c + window / 2)`` inclusive
    (``resizePosFile.pl``, ``homerTools extract``): for 128-bp bins and the default 200 that is 201 bp, 37
    before the bin and 36 after it.
    """
    if window < 1:
        msg = f"`window` must be a positive number of bp, got {window}."
        raise ValueError(msg)
    left = 1 - (1 + bin_size - window) // 2
    right = (1 + bin_size + window) // 2 - bin_size
    return left, right


def homer_log_odds(probabilities: np.ndarray) -> np.ndarray:
    """HOMER's scoring matrix: ``ln(max(p, 0.001) / 0.25)`` per position and base, rows not renormalised."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), HOMER_PROBABILITY_MINIMUM) / 0.25)


class MotifScanner:
    """Best motif log-odds score per TF and bin, from position-probability matrices, in torch.

    Each matrix becomes a log-odds filter (natural log, uniform background); a ``conv1d`` over one-hot DNA
    scores every position on both strands; a bin's score for a TF is its best hit over the motifs of the
    TF, else 0. Two scorings:

    ``scoring="jaspar"`` (the approximation)
        Matrices renormalised and floored at 1e-4; a hit reaches the matrix's `pvalue` threshold and is
        centred within `flank` bp of the bin; N scores 0.
    ``scoring="homer"`` (HOMER's ``findMotifsGenome.pl -find``)
        Motifs are :class:`epiformer.io.HomerMotif`; probabilities floored at 0.001 and not renormalised;
        a hit reaches the motif's own threshold and lies wholly inside HOMER's `window` around the bin
        (:func:`homer_flanks`); a site overlapping an N is not scored.

    Parameters
    ----------
    motifs
        TF name -> list of ``(length, 4)`` matrices (A, C, G, T), e.g. :func:`jaspar_motifs`; with
        ``scoring="homer"`` TF name -> list of :class:`epiformer.io.HomerMotif`.
    tfs
        Output TFs, in order; names are matched case-insensitively; TFs without a motif score 0.
    bin_size
        Bin width in bp.
    flank
        JASPAR scoring: bases added on each side of a bin (36 approximates HOMER's 200-bp window).
    pvalue
        JASPAR scoring: hit threshold of each matrix under a uniform background (FIMO's default 1e-4).
    scoring
        ``"jaspar"`` or ``"homer"``.
    window
        HOMER scoring: HOMER's ``-size`` (200 by default, as ``findMotifsGenome.pl``).
    device
        Torch device for the convolutions.
    """

    def __init__(
        self,
        motifs: Mapping[str, Sequence[Any]],
        tfs: Sequence[str],
        *,
        bin_size: int = 128,
        flank: int = 36,
        pvalue: float = 1e-4,
        scoring: str = "jaspar",
        window: int = HOMER_WINDOW,
        device: str | torch.device = "cpu",
    ) -> None:
        import torch

        check_choice(scoring, ("jaspar", "homer"), name="scoring")
        if not 0 < pvalue < 1:
            msg = f"`pvalue` must be in (0, 1), got {pvalue}."
            raise ValueError(msg)
        self.homer = scoring == "homer"
        self.scoring = scoring
        self.tfs = list(tfs)
        self.bin_size, self.flank, self.pvalue = int(bin_size), int(flank), float(pvalue)
        self.window = int(window)
        self.left, self.right = homer_flanks(self.window, self.bin_size) if self.homer else (self.flank, self.flank)
        self.device = torch.device(device)
        lookup = {str(name).upper(): mats for name, mats in motifs.items()}
        filters: list[tuple[np.ndarray, float]] = []  # (log-odds (length, 4), threshold)
        seen: dict[bytes, int] = {}
        pairs: list[tuple[int, int]] = []
        self.n_motifs = np.zeros(len(self.tfs), dtype=np.int64)
        for j, tf in enumerate(self.tfs):
            for motif in lookup.get(tf.upper(), []):
                log_odds, threshold = self._filter(tf, motif)
                key = log_odds.tobytes() + bytes(f"{log_odds.shape}{threshold!r}", "ascii")
                if key not in seen:
                    seen[key] = len(filters)
                    filters.append((log_odds, threshold))
                pairs.append((seen[key], j))
                self.n_motifs[j] += 1
        self.n_filters = len(filters)
        self.max_length = max((f.shape[0] for f, _ in filters), default=1)
        self.margin = max(0, self.left, self.right) if self.homer else self.flank + self.max_length
        lengths = np.array([f.shape[0] for f, _ in filters], dtype=np.int64)
        if self.homer:
            groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
        else:
            edges = (0, *_LENGTH_BUCKETS[:-1], max(_LENGTH_BUCKETS[-1], self.max_length))
            groups = [
                np.flatnonzero((lengths > lo) & (lengths <= hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            ]
        channels = 5 if self.homer else 4
        self._buckets = []
        for members in groups:
            if members.size == 0:
                continue
            width = int(lengths[members].max())
            kernel = np.zeros((members.size, channels, width), dtype=np.float32)
            thresholds = np.empty(members.size, dtype=np.float32)
            for row, index in enumerate(members):
                log_odds, thresholds[row] = filters[index]
                offset = (width - log_odds.shape[0]) // 2
                kernel[row, :4, offset : offset + log_odds.shape[0]] = log_odds.T
                if self.homer:
                    kernel[row, 4] = _N_PENALTY  # a site overlapping an N is not a site
            weight = torch.from_numpy(kernel)
            # reverse complement: A<->T, C<->G (the first four channels reversed) and positions reversed
            reverse = torch.cat([weight[:, :4].flip(1), weight[:, 4:]], dim=1).flip(2)
            local = {int(m): r for r, m in enumerate(members)}
            sel = [(local[m], tf) for m, tf in pairs if m in local]
            self._buckets.append(
                {
                    "weight": torch.cat([weight, reverse]).to(self.device),
                    "width": width,
                    "threshold": torch.from_numpy(thresholds).to(self.device),
                    "rows": torch.tensor([r for r, _ in sel], dtype=torch.long, device=self.device),
                    "tfs": torch.tensor([t for _, t in sel], dtype=torch.long, device=self.device),
                }
            )
        self._n_filters = 2 * len(filters)

    def _filter(self, tf: str, motif: Any) -> tuple[np.ndarray, float]:
        """The log-odds matrix and hit threshold of one motif under this scanner's scoring."""
        is_homer = hasattr(motif, "probabilities") and hasattr(motif, "threshold")
        if self.homer != is_homer:
            msg = (
                f"Motif of {tf!r}: HOMER motifs (epiformer.io.HomerMotif) need scoring='homer', and "
                "scoring='homer' needs HOMER motifs (their thresholds are part of the motif)."
            )
            raise TypeError(msg)
        ppm = np.asarray(motif.probabilities if is_homer else motif, dtype=np.float64)
        if ppm.ndim != 2 or ppm.shape[1] != 4 or ppm.shape[0] < 1 or (ppm < 0).any() or not np.isfinite(ppm).all():
            msg = f"Motif of {tf!r} must be a (length, 4) non-negative matrix (A, C, G, T), got shape {ppm.shape}."
            raise ValueError(msg)
        if is_homer:
            return homer_log_odds(ppm), float(motif.threshold)
        ppm = ppm / ppm.sum(axis=1, keepdims=True)
        log_odds = np.log(np.clip(ppm, 1e-4, None) / 0.25)
        return log_odds, _pvalue_threshold(log_odds, self.pvalue)

    @property
    def tfs_without_motif(self) -> list[str]:
        """Output TFs that have no motif (their score is always 0)."""
        return [tf for tf, n in zip(self.tfs, self.n_motifs, strict=True) if n == 0]

    def scan_codes(self, codes: np.ndarray) -> np.ndarray:
        """Scores ``(n_bins, n_tfs)`` of base codes covering whole bins plus `margin` bases on each side."""
        import torch

        n_bins, rest = divmod(codes.shape[0] - 2 * self.margin, self.bin_size)
        if n_bins < 1 or rest:
            msg = f"Expected {self.margin} + k * {self.bin_size} + {self.margin} bases, got {codes.shape[0]}."
            raise ValueError(msg)
        out = torch.full((len(self.tfs), n_bins), -torch.inf, device=self.device)
        if self._buckets:
            x = torch.from_numpy(one_hot(codes, channels=5 if self.homer else 4).T.copy()).to(self.device)[None]
            cudnn = torch.backends.cudnn  # full float32 convolutions: TF32 would blur scores near the thresholds
            exact = cudnn.flags(
                enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
            )
            with torch.inference_mode(), exact:
                for bucket in self._buckets:
                    pooled = self._pool(x, bucket, n_bins)
                    if pooled is None:
                        continue
                    hit = pooled >= bucket["threshold"][:, None]
                    if self.homer:
                        hit &= pooled > _N_PENALTY / 2
                    pooled = torch.where(hit, pooled, -torch.inf)
                    index = bucket["tfs"][:, None].expand(-1, n_bins).contiguous()  # scatter is slow on expanded views
                    out.scatter_reduce_(0, index, pooled[bucket["rows"]], reduce="amax", include_self=True)
        out = torch.where(torch.isfinite(out), out, 0.0)
        return out.T.cpu().numpy()

    def _pool(self, x: torch.Tensor, bucket: dict[str, Any], n_bins: int) -> torch.Tensor | None:
        """Best score of each filter of `bucket` per bin, strands merged: ``(n_filters, n_bins)``."""
        import torch.nn.functional as F

        width = bucket["width"]
        if self.homer:
            span = self.left + self.bin_size + self.right  # HOMER's window; sites must fit inside it
            positions = span - width + 1
            if positions < 1:
                return None
            start = self.margin - self.left
            scores = F.conv1d(x[..., start : start + (n_bins - 1) * self.bin_size + span], bucket["weight"])
        else:
            span = n_bins * self.bin_size + 2 * self.flank
            positions = self.bin_size + 2 * self.flank  # centres within `flank` of the bin
            start = self.margin - self.flank - width // 2
            scores = F.conv1d(x[..., start : start + span + width - 1], bucket["weight"])
        pooled = F.max_pool1d(scores, kernel_size=positions, stride=self.bin_size)[0]
        return pooled.view(2, -1, n_bins).amax(0)

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


def homer_motifs_by_tf(
    motifs: str | Path | Sequence[HomerMotif],
    motif_to_tf: str | Path | pd.DataFrame | None = None,
) -> dict[str, list[HomerMotif]]:
    """HOMER motifs grouped by TF through a motif-to-TF table (the authors' ``MotifMatch_human_rmdup.mat``).

    Parameters
    ----------
    motifs
        A HOMER ``.motif`` file (:func:`epiformer.io.read_homer_motifs`) or a list of
        :class:`epiformer.io.HomerMotif`.
    motif_to_tf
        A ``.mat`` / TSV path (:func:`epiformer.io.read_motif_to_tf`) or a DataFrame with columns `motif`
        and `tf`; motifs are matched by their exact name, a motif may serve several TFs and a TF several
        motifs. `None` makes every motif its own TF (named by the motif's name).

    Returns
    -------
    TF -> list of its motifs, TFs in table order.
    """
    library = read_homer_motifs(motifs) if isinstance(motifs, str | Path) else list(motifs)
    if not library or not all(isinstance(m, HomerMotif) for m in library):
        msg = "`motifs` must be a HOMER .motif file or a non-empty list of epiformer.io.HomerMotif."
        raise TypeError(msg)
    by_name: dict[str, list[HomerMotif]] = {}
    for motif in library:
        by_name.setdefault(motif.name, []).append(motif)
    if motif_to_tf is None:
        return {name: list(group) for name, group in by_name.items()}
    table = motif_to_tf if isinstance(motif_to_tf, pd.DataFrame) else read_motif_to_tf(motif_to_tf)
    if not {"motif", "tf"} <= set(table.columns):
        msg = f"The motif-to-TF table needs columns 'motif' and 'tf', got {list(table.columns)}."
        raise ValueError(msg)
    out: dict[str, list[HomerMotif]] = {}
    unknown = []
    for motif, tf in table[["motif", "tf"]].astype(str).itertuples(index=False, name=None):
        if motif not in by_name:
            unknown.append(motif)
            continue
        group = out.setdefault(tf, [])
        group.extend(m for m in by_name[motif] if not any(m is g for g in group))
    if not out:
        msg = (
            f"No motif of the motif-to-TF table is in the HOMER library (table: {first_items(list(table['motif']))}; "
            f"library: {first_items(list(by_name))}); the names must match the motif names exactly."
        )
        raise ValueError(msg)
    if unknown:
        warn(
            f"{len(unknown)} rows of the motif-to-TF table name motifs absent from the library: {first_items(unknown)}."
        )
    return out


def motif_scores(
    regions: Any,
    *,
    fasta: Any,
    tfs: Sequence[str] | Any,
    coordinates: Literal["0-based", "1-based"] | None = None,
    motifs: Mapping[str, Sequence[np.ndarray]] | str | Path | Sequence[HomerMotif] | None = None,
    motif_to_tf: str | Path | pd.DataFrame | None = None,
    bin_size: int = 128,
    window: int | None = None,
    flank: int | None = None,
    pvalue: float | None = None,
    device: str = "cpu",
) -> AnnData:
    """Motif score of every TF in every bin of some regions: EpiGePT's sequence-side TF input.

    The best log-odds score of a TF's motifs around each 128-bp bin, 0 without a hit. With a HOMER motif
    library (`motifs` a ``.motif`` file, `motif_to_tf` the motif-to-TF table) this is the authors'
    computation, HOMER's ``findMotifsGenome.pl bins.bed genome out -find motifs.motif`` reduced per TF;
    without one, JASPAR motifs scanned at a p-value threshold approximate it (see :class:`MotifScanner`).
    Bins are laid on a fixed genome grid (bin k holds positions ``128 k + 1 .. 128 (k + 1)``), so regions
    are widened to whole bins.

    Parameters
    ----------
    regions
        ``"chr22:20000001-20500000"`` (1-based, inclusive), a list of them or of ``(chrom, start, end)``
        tuples (1-based, inclusive), a BED file path (``.bed``/``.bed.gz``, 0-based, half-open), a pyranges
        object (0-based, half-open) or a DataFrame with `chrom`, `start`, `end` (see `coordinates`).
    fasta
        Reference genome: a FASTA path, an :class:`epiformer.io.Genome`, or a segment such as
        :func:`epiformer.datasets.hg19_chr22_segment`.
    tfs
        TF names in output order (e.g. the checkpoint's 711 TFs), or a model carrying them
        (``model.tf_names``); TFs without a motif score 0 (a warning counts them).
    coordinates
        How the `start` / `end` of a `regions` DataFrame count: ``"0-based"`` (half-open, as BED, bioframe and
        pyranges) or ``"1-based"`` (inclusive). `None` takes ``regions.attrs["coordinates"]``; tables epiformer
        made are 1-based, any other table must say.
    motifs
        A HOMER ``.motif`` file or a list of :class:`epiformer.io.HomerMotif` (HOMER scoring); TF -> list
        of ``(length, 4)`` probability matrices (JASPAR scoring); `None` uses :func:`jaspar_motifs`
        (JASPAR 2024 CORE vertebrates).
    motif_to_tf
        HOMER motifs only: motif-to-TF table, a ``.mat`` (the authors' ``MotifMatch_human_rmdup.mat``) or
        TSV path or a DataFrame (`motif`, `tf`). Motifs match by exact name; a motif may serve several TFs;
        `None` makes every motif its own TF, named by the motif's name.
    bin_size
        Bin width in bp (128 for EpiGePT).
    window
        HOMER scoring: HOMER's ``-size``, the region around each bin's centre where whole sites count
        (default 200, HOMER's default and inferred for the authors' command).
    flank
        JASPAR scoring: bases around each bin where motif centres count (default 36, about HOMER's window).
    pvalue
        JASPAR scoring: per-motif hit threshold (default 1e-4).
    device
        Torch device for the scan.

    Returns
    -------
    AnnData of bins x TFs: `X` the scores (float32), `obs` `chrom` / `start` / `end` / `region`, `var`
    `n_motifs` (motifs per TF; TFs with none score 0), `uns['motif_scores']['params']` the settings, with
    `motif_source` ``"homer"`` or ``"jaspar (approximation)"``.

    Notes
    -----
    HOMER scoring follows HOMER's source (``cpp/Motif2.cpp``, ``bin/findMotifsGenome.pl``,
    ``bin/resizePosFile.pl``, ``cpp/SeqTag.cpp``): scores are ``sum ln(max(p, 0.001) / 0.25)`` over the
    site with the file's probabilities as written (no renormalisation); both strands are scanned (the
    reverse strand with the complemented, reversed matrix); a site counts where its score is at least the
    motif's threshold (``>=``) and it lies wholly inside the extracted sequence; a site overlapping any
    character other than A/C/G/T is skipped (lowercase, soft-masked bases are upper-cased first, as without
    ``-mask``); the sequence is ``floor(c - window/2) .. floor(c + window/2)`` (1-based, inclusive) around
    the bin centre ``c``, i.e. 201 bp for the default 200, padded with N past the chromosome ends. Inferred,
    not established: that the authors' ``bins.bed`` holds the 128-bp bins themselves, that their command
    used the default ``-size 200`` and no ``-mask``, and that their motif-to-TF table names motifs exactly
    as the ``.motif`` headers do.
    """
    names = tf_list(tfs)
    spans = parse_regions(regions, coordinates=coordinates)
    genome = Genome.open(fasta)
    homer = isinstance(motifs, str | Path) or (
        isinstance(motifs, Sequence) and not isinstance(motifs, Mapping) and len(motifs) > 0
    )
    if homer:
        if flank is not None or pvalue is not None:
            msg = "`flank` and `pvalue` apply to the JASPAR scan; HOMER motifs use `window=` and their own thresholds."
            raise ValueError(msg)
        window = HOMER_WINDOW if window is None else int(window)
        by_tf = homer_motifs_by_tf(motifs, motif_to_tf)
        scanner = MotifScanner(by_tf, names, bin_size=bin_size, scoring="homer", window=window, device=device)
        params: dict[str, Any] = {
            "bin_size": bin_size,
            "window": window,
            "motifs": str(motifs) if isinstance(motifs, str | Path) else "user-supplied HOMER motifs",
            "motif_to_tf": str(motif_to_tf)
            if isinstance(motif_to_tf, str | Path)
            else ("user-supplied table" if motif_to_tf is not None else "motif names"),
            "motif_source": "homer",
            "n_motif_filters": scanner.n_filters,
        }
    else:
        if motif_to_tf is not None or window is not None:
            msg = (
                "`motif_to_tf` and `window` apply to HOMER motifs (`motifs=` a .motif file or a list of "
                "epiformer.io.HomerMotif); the JASPAR scan uses `flank=` and `pvalue=`."
            )
            raise ValueError(msg)
        flank = 36 if flank is None else int(flank)
        pvalue = 1e-4 if pvalue is None else float(pvalue)
        source = "JASPAR2024 CORE vertebrates (pyjaspar)" if motifs is None else "user-supplied"
        if motifs is None:
            motifs = jaspar_motifs(tfs=names)
        elif not isinstance(motifs, Mapping):
            msg = "`motifs` must be a HOMER .motif path, a list of HomerMotif, or a dict TF -> probability matrices."
            raise TypeError(msg)
        scanner = MotifScanner(motifs, names, bin_size=bin_size, flank=flank, pvalue=pvalue, device=device)
        params = {
            "bin_size": bin_size,
            "flank": flank,
            "pvalue": pvalue,
            "motifs": source,
            "motif_source": "jaspar (approximation)",
        }
    missing = scanner.tfs_without_motif
    if missing:
        warn(f"{len(missing)} of {len(names)} TFs have no motif and score 0 in every bin: {first_items(missing)}.")
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
    params["n_tfs_without_motif"] = len(missing)
    record_params(adata, Key.uns.motif_scores, params)
    return adata
