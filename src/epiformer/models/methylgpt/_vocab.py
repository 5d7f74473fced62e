"""MethylGPT's token vocabulary: three special tokens, then one token per CpG probe."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._files import atomic_path
from epiformer._probe_ids import match_vocab, var_ids, vocab_coverage
from epiformer._validation import check_unique, first_items

#: The special tokens and their fixed indices in every published ``vocab.json``.
SPECIAL_TOKENS = ("<pad>", "<cls>", "<eoc>")


class MethylGPTVocab:
    """The CpG vocabulary of a MethylGPT model (the authors' ``vocab.json``).

    Token indices are ``<pad>`` = 0, ``<cls>`` = 1, ``<eoc>`` = 2, then one index per CpG probe from 3; the
    published vocabulary holds 49,156 probes (49,159 tokens). Probes are kept in index order, which is also
    the order in which the model reads them.

    Parameters
    ----------
    stoi
        Mapping of every token to its index, as stored in ``vocab.json``.

    Raises
    ------
    ValueError
        If the special tokens are not at 0, 1, 2, the indices are not exactly ``0 .. n-1``, or there is no probe.
    """

    def __init__(self, stoi: Mapping[str, int]):
        items = sorted(((int(i), str(t)) for t, i in stoi.items()), key=lambda x: x[0])
        indices = [i for i, _ in items]
        if indices != list(range(len(items))):
            msg = (
                f"The vocabulary's indices must be exactly 0 .. {len(items) - 1} without gaps or duplicates; "
                "is this a MethylGPT `vocab.json`?"
            )
            raise ValueError(msg)
        tokens = [t for _, t in items]
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            msg = (
                f"The vocabulary must start with {list(SPECIAL_TOKENS)} at indices 0, 1, 2, "
                f"found {tokens[: len(SPECIAL_TOKENS)]}."
            )
            raise ValueError(msg)
        if len(tokens) == len(SPECIAL_TOKENS):
            msg = "The vocabulary holds no CpG probe."
            raise ValueError(msg)
        self._tokens = tokens
        self._index = {t: i for i, t in enumerate(tokens)}
        self.probes = pd.Index(tokens[len(SPECIAL_TOKENS) :], dtype=str)
        """The CpG probe IDs in model (index) order."""

    @classmethod
    def from_probes(cls, probes: Sequence[str]) -> MethylGPTVocab:
        """A vocabulary of the special tokens followed by `probes`, in the given order.

        Parameters
        ----------
        probes
            Unique CpG probe IDs.

        Returns
        -------
        The vocabulary, probe ``probes[i]`` at index ``i + 3``.
        """
        probes = [str(p) for p in probes]
        check_unique(probes, what="probe IDs")
        clash = [p for p in probes if p in SPECIAL_TOKENS]
        if clash:
            msg = f"Probe IDs may not be special tokens: {first_items(clash)}."
            raise ValueError(msg)
        return cls({t: i for i, t in enumerate([*SPECIAL_TOKENS, *probes])})

    @classmethod
    def from_json(cls, path: str | PathLike) -> MethylGPTVocab:
        """Read a ``vocab.json`` file (``{token: index}``).

        Parameters
        ----------
        path
            The JSON file.

        Returns
        -------
        The vocabulary.
        """
        with open(path) as fh:
            stoi = json.load(fh)
        if not isinstance(stoi, dict):
            msg = f"{path} does not hold a JSON object mapping tokens to indices."
            raise ValueError(msg)
        return cls(stoi)

    def to_json(self, path: str | PathLike) -> Path:
        """Write the vocabulary as ``{token: index}`` JSON, the published layout.

        Parameters
        ----------
        path
            File to write.

        Returns
        -------
        The path written.
        """
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.stoi, indent=1))
        return path

    @property
    def stoi(self) -> dict[str, int]:
        """Token -> index."""
        return dict(self._index)

    @property
    def pad_id(self) -> int:
        """Index of ``<pad>``."""
        return 0

    @property
    def cls_id(self) -> int:
        """Index of ``<cls>``, the token whose output is the sample embedding."""
        return 1

    @property
    def probe_ids(self) -> np.ndarray:
        """Token indices of :attr:`probes`, in order (``3 .. n-1``)."""
        return np.arange(len(SPECIAL_TOKENS), len(self._tokens), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._tokens)

    def __getitem__(self, token: str) -> int:
        try:
            return self._index[token]
        except KeyError:
            msg = f"{token!r} is not in the vocabulary."
            raise KeyError(msg) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MethylGPTVocab) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"MethylGPTVocab({len(self.probes)} CpG probes + {len(SPECIAL_TOKENS)} special tokens)"

    def match(self, adata: AnnData, *, var_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where the vocabulary's probes are in `adata`.

        Parameters
        ----------
        adata
            Samples x CpGs.
        var_key
            Column of `adata.var` holding the probe IDs; `None` uses `adata.var_names`.

        Returns
        -------
        ``(in_data, in_vocab)``: column positions in `adata` and the matching positions in :attr:`probes`.
        """
        return match_vocab(var_ids(adata, var_key), self.probes)

    def coverage(self, adata: AnnData, *, var_key: str | None = None) -> dict[str, int | float]:
        """How much of the vocabulary `adata` covers.

        Parameters
        ----------
        adata
            Samples x CpGs.
        var_key
            Column of `adata.var` holding the probe IDs; `None` uses `adata.var_names`.

        Returns
        -------
        `n_vocab` (probes in the vocabulary), `n_found` (of them in the data), `fraction_found` and `n_unused`
        (data CpGs the model does not know), the keys of :func:`epiformer.pp.align_to_vocab`.
        """
        in_data, _ = self.match(adata, var_key=var_key)
        return vocab_coverage(len(self.probes), len(in_data), adata.n_vars)
