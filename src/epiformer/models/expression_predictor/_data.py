"""Inputs of the expression predictor: expression scaling, per-CpG tables, and the batches it trains on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import sparse
from torch.utils.data import IterableDataset

from epiformer._annotations import legacy_code
from epiformer._validation import check_choice

Scaling = Literal["minmax", "standard"]


@dataclass
class ExpressionScaler:
    """Per-gene scaling of log expression, fit on training samples only and stored with the model.

    ``"minmax"`` maps each gene's training range to `feature_range` ((10, 100) as published, so that
    unexpressed genes still carry the distance signal); ``"standard"`` centres and scales to unit variance.
    Genes absent from new data are set to 0 *after* scaling, so they contribute nothing.
    """

    kind: Scaling
    shift: np.ndarray
    scale: np.ndarray
    feature_range: tuple[float, float] = (10.0, 100.0)

    @classmethod
    def fit(cls, X: np.ndarray, kind: Scaling, feature_range: tuple[float, float] = (10.0, 100.0)) -> ExpressionScaler:
        """Fit on the rows of `X` (training samples x genes)."""
        check_choice(kind, ("minmax", "standard"), name="scaling")
        if kind == "minmax":
            lo, hi = X.min(axis=0), X.max(axis=0)
            span = hi - lo
            return cls(kind, lo.astype(np.float32), np.where(span > 0, span, 1.0).astype(np.float32), feature_range)
        sd = X.std(axis=0)
        return cls(kind, X.mean(axis=0).astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32))

    def transform(self, X: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """Scale `X` (samples x genes, in the fitted gene order); columns not `present` become 0."""
        unit = (np.asarray(X, dtype=np.float32) - self.shift) / self.scale
        if self.kind == "minmax":
            lo, hi = self.feature_range
            unit = lo + (hi - lo) * unit
        if present is not None:
            unit[:, ~present] = 0.0
        return unit.astype(np.float32)


def nearest_genes(dist: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `k` nearest genes of every CpG (by absolute distance) from a CSR CpG x gene distance matrix.

    Returns gene indices ``(n_cpgs, k)`` (padded with ``n_genes``), signed distances (padded with 0) and a
    validity mask.
    """
    dist = dist.tocsr()
    n_cpg, n_genes = dist.shape
    row = np.repeat(np.arange(n_cpg), np.diff(dist.indptr))
    order = np.lexsort((np.abs(dist.data), row))
    row, gene, value = row[order], dist.indices[order], dist.data[order]
    rank = np.arange(len(row)) - np.repeat(dist.indptr[:-1], np.diff(dist.indptr))
    keep = rank < k
    idx = np.full((n_cpg, k), n_genes, dtype=np.int64)
    near = np.zeros((n_cpg, k), dtype=np.float32)
    idx[row[keep], rank[keep]] = gene[keep]
    near[row[keep], rank[keep]] = value[keep]
    return idx, near, idx < n_genes


class CpGTable:
    """What the networks read per CpG, held on the CPU and gathered per batch.

    For ``levy_jurgenson`` the distance input is the dense row of halving-2-kb codes over all genes (from a
    legacy-encoded matrix as is, or from signed distances ``d`` as ``legacy_code(-d)``: the published code
    with its sign taken along the gene); for ``factorized`` it is the `n_neighbors` nearest genes.
    """

    def __init__(
        self,
        seq: np.ndarray,
        dist: sparse.csr_matrix,
        encoding: str,
        architecture: str,
        n_neighbors: int,
    ) -> None:
        self.architecture = architecture
        self.seq = torch.as_tensor(np.ascontiguousarray(seq, dtype=np.uint8))
        dist = sparse.csr_matrix(dist, dtype=np.float32)
        if architecture == "levy_jurgenson":
            codes = dist.copy()
            if encoding == "signed_bp":
                codes.data = legacy_code(-dist.data.astype(np.float64)).astype(np.float32)
            self.codes = codes
        else:
            if encoding != "signed_bp":
                msg = "The factorized model needs signed distances: run `ef.pp.cpg_gene_distances(mdata, encoding='signed_bp')`."
                raise ValueError(msg)
            idx, near, mask = nearest_genes(dist, n_neighbors)
            self.nbr_idx, self.nbr_dist, self.nbr_mask = (torch.as_tensor(a) for a in (idx, near, mask))

    def __len__(self) -> int:
        return self.seq.shape[0]

    def inputs(self, cpgs: np.ndarray) -> dict[str, torch.Tensor]:
        """Network inputs of the CpGs at positions `cpgs`."""
        index = torch.as_tensor(cpgs, dtype=torch.long)
        out = {"seq": self.seq[index]}
        if self.architecture == "levy_jurgenson":
            out["dist"] = torch.as_tensor(self.codes[cpgs].toarray())
        else:
            out.update(nbr_idx=self.nbr_idx[index], nbr_dist=self.nbr_dist[index], nbr_mask=self.nbr_mask[index])
        return out

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to save with the model."""
        if self.architecture == "levy_jurgenson":
            return {
                "cpg.seq": self.seq,
                "cpg.codes.data": torch.as_tensor(self.codes.data),
                "cpg.codes.indices": torch.as_tensor(self.codes.indices.astype(np.int64)),
                "cpg.codes.indptr": torch.as_tensor(self.codes.indptr.astype(np.int64)),
                "cpg.codes.shape": torch.as_tensor(np.array(self.codes.shape, dtype=np.int64)),
            }
        return {
            "cpg.seq": self.seq,
            "cpg.nbr_idx": self.nbr_idx,
            "cpg.nbr_dist": self.nbr_dist,
            "cpg.nbr_mask": self.nbr_mask,
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], architecture: str) -> CpGTable:
        """Rebuild a table saved with :meth:`state`."""
        table = cls.__new__(cls)
        table.architecture = architecture
        table.seq = state["cpg.seq"]
        if architecture == "levy_jurgenson":
            shape = tuple(int(x) for x in state["cpg.codes.shape"])
            table.codes = sparse.csr_matrix(
                (
                    state["cpg.codes.data"].numpy(),
                    state["cpg.codes.indices"].numpy(),
                    state["cpg.codes.indptr"].numpy(),
                ),
                shape=shape,
            )
        else:
            table.nbr_idx, table.nbr_dist, table.nbr_mask = (
                state[f"cpg.{k}"] for k in ("nbr_idx", "nbr_dist", "nbr_mask")
            )
        return table


def _shard(items: list) -> list:
    """The current process's share of `items` in distributed training (equal shares, the same order on every rank)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return items
    world, rank = dist.get_world_size(), dist.get_rank()
    return items[rank::world][: len(items) // world]


class BlockBatches(IterableDataset):
    """Blocks of CpGs x samples (every pair of the two index sets once per pass), optionally shuffled.

    Shuffled (training) blocks are shared out between processes under distributed training.
    """

    def __init__(
        self,
        table: CpGTable,
        expr: np.ndarray,
        betas: np.ndarray | None,
        cpgs: np.ndarray,
        samples: np.ndarray,
        *,
        cpg_batch: int,
        sample_batch: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.table, self.expr, self.betas = table, torch.as_tensor(expr), betas
        self.cpgs, self.samples = np.asarray(cpgs), np.asarray(samples)
        self.cpg_batch, self.sample_batch, self.shuffle = cpg_batch, sample_batch, shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.cpgs) // self.cpg_batch) * -(-len(self.samples) // self.sample_batch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        cpgs = self.rng.permutation(self.cpgs) if self.shuffle else self.cpgs
        samples = self.rng.permutation(self.samples) if self.shuffle else self.samples
        blocks = [
            (c, s) for c in range(0, len(cpgs), self.cpg_batch) for s in range(0, len(samples), self.sample_batch)
        ]
        if self.shuffle:
            blocks = _shard([blocks[i] for i in self.rng.permutation(len(blocks))])
        for c, s in blocks:
            ci, si = cpgs[c : c + self.cpg_batch], samples[s : s + self.sample_batch]
            batch = self.table.inputs(ci)
            batch["expr"] = self.expr[torch.as_tensor(si, dtype=torch.long)]
            if self.betas is not None:
                batch["beta"] = torch.as_tensor(self.betas[np.ix_(si, ci)])
            yield batch


class PairBatches(IterableDataset):
    """Random (CpG, sample) pairs with an observed beta, `batch_size` at a time, as the published model trains."""

    def __init__(
        self,
        table: CpGTable,
        expr: np.ndarray,
        betas: np.ndarray,
        cpgs: np.ndarray,
        samples: np.ndarray,
        *,
        batch_size: int,
        seed: int = 0,
    ) -> None:
        self.table, self.expr = table, torch.as_tensor(expr)
        sub = betas[np.ix_(samples, cpgs)]
        si, ci = np.nonzero(~np.isnan(sub))
        self.pair_sample, self.pair_cpg = np.asarray(samples)[si], np.asarray(cpgs)[ci]
        self.target = sub[si, ci].astype(np.float32)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.target) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self.rng.permutation(len(self.target))
        for lo in _shard(list(range(0, len(order), self.batch_size))):
            pick = order[lo : lo + self.batch_size]
            batch = self.table.inputs(self.pair_cpg[pick])
            batch["expr"] = self.expr[torch.as_tensor(self.pair_sample[pick], dtype=torch.long)]
            batch["beta"] = torch.as_tensor(self.target[pick])
            yield batch
