"""Check sequencing sites against a reference FASTA: each must be the C of a CpG on its strand.

Positions one base off (a 0-based file read as 1-based) or from another genome build fail this check for most
sites; the error says which, rather than letting counts land on the wrong CpGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epiformer._sequence import BASES, N_CODE, normalize_chrom
from epiformer._validation import first_items

from ._genome import Genome

_C, _G = BASES.index("C"), BASES.index("G")
#: Strand codes of a site: combined at the + C, the + C, the - C, not stated by the file.
COMBINED, PLUS, MINUS, UNSTATED = 0, 1, 2, 3
#: Below this fraction of sites on CpGs, positions shifted by one base are tried.
_GOOD = 0.9
#: Below this fraction, the file does not belong to the FASTA.
_MOST = 0.5


@dataclass
class CpGCheck:
    """What the check found in one file: the sites to keep and their strand codes (``*`` resolved)."""

    keep: np.ndarray
    strand: np.ndarray
    n_off_cpg: int


def _on_cpg(seq: np.ndarray, idx: np.ndarray, strand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each 0-based index of `seq` is the C of a CpG on the site's strand, and the strand it fits."""
    n = len(seq)
    inside = (idx >= 0) & (idx < n)
    safe = np.clip(idx, 0, n - 1)
    base = np.where(inside, seq[safe], N_CODE)  # outside the sequence reads as N: never a C or a G
    nxt = np.where(inside & (idx + 1 < n), seq[np.clip(idx + 1, 0, n - 1)], N_CODE)
    prv = np.where(inside & (idx >= 1), seq[np.clip(idx - 1, 0, n - 1)], N_CODE)
    plus = (base == _C) & (nxt == _G)
    minus = (base == _G) & (prv == _C)
    ok = np.where(strand == MINUS, minus, np.where(strand == UNSTATED, plus | minus, plus))
    resolved = np.where(strand == UNSTATED, np.where(plus, PLUS, MINUS), strand)
    return ok, resolved


#: Fewer sites than this are too few to tell a one-base shift from chance.
_MIN_SITES_FOR_SHIFT = 20


#: For each shift that puts the sites on CpGs: the convention the file must have been read in for the usual cause,
#: and that cause.
_SHIFT_CAUSES = {
    1: (
        "1-based",
        "the file holds 0-based starts read as 1-based positions: it was probably written by a 0-based tool "
        "(MethylDackel, modkit, ENCODE bedMethyl)",
    ),
    -1: (
        "0-based",
        "the file holds 1-based positions read as 0-based starts: it was probably written by a 1-based tool "
        "(Bismark, ALLCools)",
    ),
}


def _off_by_one_message(path: Path, shift: int, fraction: float, shifted: float, *, coordinates: str) -> str:
    read_as, cause = _SHIFT_CAUSES[shift]
    if coordinates != read_as:  # the format's own convention was applied: the usual cause is impossible
        cause = (
            f"the positions are off by one base even in the format's {coordinates} convention: another tool wrote it"
        )
    return (
        f"{path}: only {fraction:.0%} of the sites sit on a CpG of the FASTA, but {shifted:.0%} would one base "
        f"{'right' if shift == 1 else 'left'}; {cause}. Pass the `format=` of the tool that wrote it."
    )


def check_cpgs(
    path: Path,
    genome: Genome,
    chroms: list[str],
    chrom_id: np.ndarray,
    pos: np.ndarray,
    strand: np.ndarray,
    *,
    coordinates: str,
) -> CpGCheck:
    """Check every site of one file; raise a :class:`ValueError` when most are off CpGs, naming the likely cause.

    `coordinates` is the convention of the format the file was read with (``"0-based"`` or ``"1-based"``).
    """
    absent = [c for c in chroms if normalize_chrom(c) not in genome.chromosomes]
    present = np.unique(chrom_id)
    missing_here = [chroms[i] for i in present if chroms[i] in absent]
    if missing_here:
        msg = (
            f"{path}: chromosomes {first_items(missing_here)} are not in the FASTA {genome.path.name} (it holds "
            f"{first_items(genome.chromosomes, 8)}). Pass the FASTA of the genome build the calls were made on."
        )
        raise ValueError(msg)
    ok = np.zeros(len(pos), dtype=bool)
    resolved = strand.copy()
    shifted = {1: np.zeros(len(pos), dtype=bool), -1: np.zeros(len(pos), dtype=bool)}
    for i in present:
        rows = np.flatnonzero(chrom_id == i)
        first, last = genome.bounds(chroms[i])
        outside = (pos[rows] < first) | (pos[rows] > last)
        if outside.any():
            msg = (
                f"{path}: {int(outside.sum())} sites of {chroms[i]} lie outside the FASTA's sequence "
                f"({first}-{last}), e.g. position {int(pos[rows][outside][0])}. Pass the FASTA of the genome "
                "build the calls were made on (a FASTA of one region checks only sites inside it)."
            )
            raise ValueError(msg)
        seq = genome.codes(chroms[i])
        idx = pos[rows] - first
        ok[rows], resolved[rows] = _on_cpg(seq, idx, strand[rows])
        for shift, out in shifted.items():  # shifted sites may fit either strand
            out[rows] = _on_cpg(seq, idx + shift, np.full(len(rows), UNSTATED))[0]
    fraction = float(ok.mean()) if len(ok) else 1.0
    if fraction < _GOOD and len(ok) >= _MIN_SITES_FOR_SHIFT:
        shift, best = max(((s, float(v.mean())) for s, v in shifted.items()), key=lambda item: item[1])
        if best >= _GOOD and best > fraction + 0.2:
            raise ValueError(_off_by_one_message(path, shift, fraction, best, coordinates=coordinates))
    if fraction < _MOST:
        msg = (
            f"{path}: {int((~ok).sum())} of {len(ok)} sites ({1 - fraction:.0%}) do not sit on a CpG of the FASTA "
            f"{genome.path.name}. The calls were probably made on another genome build (or the file holds "
            "non-CpG contexts); pass the matching FASTA."
        )
        raise ValueError(msg)
    return CpGCheck(keep=ok, strand=resolved, n_off_cpg=int((~ok).sum()))
