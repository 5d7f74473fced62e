"""The networks: Levy-Jurgenson et al.'s published per-pair model and epiformer's factorized attention model.

Both predict the beta value of (CpG, sample) pairs from the DNA around the CpG (integer base codes, one-hot
encoded here on the device), the sample's expression over all genes and the CpG's distances to genes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

N_BASES = 5


def one_hot_codes(codes: torch.Tensor) -> torch.Tensor:
    """``(n, L)`` integer base codes -> ``(n, 5, L)`` float one-hot (A, C, G, T, N), channels first."""
    return F.one_hot(codes.long(), N_BASES).to(torch.float32).transpose(1, 2)


class MotifBranch(nn.Module):
    """Conv (`filters` x `kernel_size` over the 5 one-hot channels, 'same' padding) -> BN -> ELU -> AvgPool.

    Identical to the published Conv2D of kernel ``(11, 5)`` on the input zero-padded by 5 rows per side.
    """

    def __init__(self, seq_len: int, *, filters: int = 64, kernel_size: int = 11, pool: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv1d(N_BASES, filters, kernel_size, padding=kernel_size // 2)
        self.bn = nn.BatchNorm1d(filters)
        self.pool = nn.AvgPool1d(pool, stride=pool)
        self.out_features = filters * (seq_len // pool)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """``(n, L)`` base codes -> ``(n, filters * L // pool)``."""
        return self.pool(F.elu(self.bn(self.conv(one_hot_codes(codes))))).flatten(1)


class SequenceEncoder(nn.Module):
    """A light CNN for the factorized model: densities of learned motifs near the CpG and over the window.

    Conv (`filters` x `kernel_size`) -> BN -> ELU, then the mean of every filter over the central
    ``2 * near`` bp and over the whole window (standardised by a BatchNorm, as averages over hundreds of
    positions vary little), into a dense layer of `out_features`. Motif densities (the
    CpG density above all) are one step away, and with few weights it generalises from a few thousand CpGs
    instead of memorising their windows (position-wise features overfit badly at that size).
    """

    def __init__(
        self, seq_len: int, *, filters: int = 64, kernel_size: int = 11, near: int = 100, out_features: int = 40
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(N_BASES, filters, kernel_size, padding=kernel_size // 2)
        self.bn = nn.BatchNorm1d(filters)
        self.half, self.near = seq_len // 2, min(near, seq_len // 2)
        self.dense = nn.Sequential(
            nn.BatchNorm1d(2 * filters), nn.Linear(2 * filters, 64), nn.ELU(), nn.Linear(64, out_features), nn.ELU()
        )
        self.out_features = out_features

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """``(n, L)`` base codes -> ``(n, out_features)``."""
        maps = F.elu(self.bn(self.conv(one_hot_codes(codes))))
        central = maps[..., self.half - self.near : self.half + self.near].mean(-1)
        return self.dense(torch.cat([central, maps.mean(-1)], dim=1))


def dense_stack(in_features: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Dense -> BatchNorm -> ELU blocks of the published network."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ELU()]
        in_features = width
    return nn.Sequential(*layers)


class LevyJurgensonNet(nn.Module):
    """The published network (Levy-Jurgenson et al. 2019, TF 1.x; layer shapes of its PyTorch port).

    Per (CpG, sample) pair: a CNN over the one-hot window gives ``f_seq`` (40); three softmax "attention"
    vectors over the G genes come from MLPs of the expression (``a_E``, G -> G/6 -> G), of the distance
    codes (``a_D``, same form) and of a second CNN over the sequence (``a_S``, -> 20 -> G); the merge
    ``[f_seq, a_S * e, a_E * e, a_D * e]`` -> 50 -> 45 -> 40 -> 1 has a linear output (trained with MAE).

    Parameters
    ----------
    n_genes
        Number of genes G (expression and distance inputs).
    seq_len
        Window length in bp (800 as published).
    hidden
        Widths of the dense stacks (50, 45, 40 as published).
    """

    def __init__(
        self,
        n_genes: int,
        seq_len: int,
        *,
        filters: int = 64,
        kernel_size: int = 11,
        pool: int = 10,
        hidden: tuple[int, ...] = (50, 45, 40),
        attention_ratio: int = 6,
        seq_attention_width: int = 20,
    ) -> None:
        super().__init__()
        bottleneck = max(1, n_genes // attention_ratio)
        self.motif = MotifBranch(seq_len, filters=filters, kernel_size=kernel_size, pool=pool)
        self.seq_dense = dense_stack(self.motif.out_features, hidden)
        self.expr_attention = dense_stack(n_genes, (bottleneck, n_genes))
        self.dist_attention = dense_stack(n_genes, (bottleneck, n_genes))
        self.seq_attention_motif = MotifBranch(seq_len, filters=filters, kernel_size=kernel_size, pool=pool)
        self.seq_attention = dense_stack(self.seq_attention_motif.out_features, (seq_attention_width, n_genes))
        self.merge = dense_stack(3 * n_genes + hidden[-1], hidden)
        self.out = nn.Linear(hidden[-1], 1)

    def cpg_parts(self, seq: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``f_seq``, ``a_S`` and ``a_D`` of CpGs from their base codes ``(n, L)`` and distance codes ``(n, G)``."""
        f_seq = self.seq_dense(self.motif(seq))
        a_seq = torch.softmax(self.seq_attention(self.seq_attention_motif(seq)), dim=-1)
        a_dist = torch.softmax(self.dist_attention(dist), dim=-1)
        return f_seq, a_seq, a_dist

    def sample_parts(self, expr: torch.Tensor) -> torch.Tensor:
        """``a_E`` of samples from their scaled expression ``(n, G)``."""
        return torch.softmax(self.expr_attention(expr), dim=-1)

    def merge_pairs(self, cpg: tuple[torch.Tensor, ...], a_expr: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """Prediction of aligned rows: CpG parts, sample attention and expression, all ``(n, ...)``."""
        f_seq, a_seq, a_dist = cpg
        h = torch.cat([f_seq, a_seq * expr, a_expr * expr, a_dist * expr], dim=1)
        return self.out(self.merge(h)).squeeze(-1)

    def forward(self, seq: torch.Tensor, expr: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """The published per-pair computation: every part recomputed for each of the ``n`` pairs."""
        return self.merge_pairs(self.cpg_parts(seq, dist), self.sample_parts(expr), expr)

    def forward_block(
        self, *, seq: torch.Tensor, dist: torch.Tensor, expr: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        """Predictions ``(S, C)`` for all pairs of C CpGs x S samples.

        In evaluation mode (BatchNorm with running statistics) the CpG and sample parts are computed once
        and gathered per pair, which gives exactly the per-pair result; in training mode every pair is
        computed as published.
        """
        n_cpg, n_sample = seq.shape[0], expr.shape[0]
        ci = torch.arange(n_cpg, device=seq.device).repeat(n_sample)
        si = torch.arange(n_sample, device=seq.device).repeat_interleave(n_cpg)
        if self.training:
            return self(seq[ci], expr[si], dist[ci]).view(n_sample, n_cpg)
        cpg = self.cpg_parts(seq, dist)
        a_expr = self.sample_parts(expr)
        out = []
        for lo in range(0, len(ci), chunk):
            c, s = ci[lo : lo + chunk], si[lo : lo + chunk]
            out.append(self.merge_pairs(tuple(p[c] for p in cpg), a_expr[s], expr[s]))
        return torch.cat(out).view(n_sample, n_cpg)


#: Centres (log10 bp) and width of the radial distance features.
_RBF_CENTRES = torch.linspace(2.0, 6.0, 9)
_RBF_WIDTH = 0.5
N_DIST_FEATURES = 2 * len(_RBF_CENTRES) + 2


def distance_features(dist: torch.Tensor) -> torch.Tensor:
    """Features of signed distances (bp; negative = upstream): radial bumps on log10 distance per side."""
    log_d = torch.log10(1.0 + dist.abs()).unsqueeze(-1)
    rbf = torch.exp(-(((log_d - _RBF_CENTRES.to(dist.device)) / _RBF_WIDTH) ** 2))
    up = (dist < 0).unsqueeze(-1).to(rbf.dtype)
    near = torch.exp(-dist.abs() / 1000.0).unsqueeze(-1)
    return torch.cat([rbf * (1 - up), rbf * up, near, near * torch.sign(dist).unsqueeze(-1)], dim=-1)


class FactorizedNet(nn.Module):
    """Attention over the genes near each CpG, with CpG and sample parts computed once per block.

    For a block of C CpGs x S samples: a light CNN over each CpG's window (:class:`SequenceEncoder`) gives
    ``f_c``; each of `n_heads` heads
    scores the CpG's K nearest genes (key: gene embedding + distance features; query: ``f_c``; plus a null
    slot to attend to nothing) with :func:`torch.nn.functional.scaled_dot_product_attention`, whose values
    are the genes' expression in every sample of the block and their distance features. The CpG embedding
    ``[f_c, attended distance features]``, a low-rank embedding of the sample's whole expression profile and
    the attended expression (scaled by a CpG-specific gain per head) meet in a small per-pair MLP with a
    sigmoid output. The CpG embedding also sees the distance features of its nearest gene. Nothing of size C x S x G is formed.

    Parameters
    ----------
    n_genes
        Number of genes G.
    seq_len
        Window length in bp.
    n_heads
        Attention heads.
    key_dim
        Query / key width per head.
    gene_dim
        Width of the learned gene embedding.
    sample_dim
        Width of the sample expression embedding.
    hidden
        Width of the per-pair MLP.
    """

    def __init__(
        self,
        n_genes: int,
        seq_len: int,
        *,
        filters: int = 64,
        kernel_size: int = 11,
        n_heads: int = 4,
        key_dim: int = 16,
        gene_dim: int = 8,
        sample_dim: int = 16,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.n_genes, self.n_heads, self.key_dim = n_genes, n_heads, key_dim
        self.sequence = SequenceEncoder(seq_len, filters=filters, kernel_size=kernel_size)
        self.gene_embedding = nn.Embedding(n_genes + 1, gene_dim, padding_idx=n_genes)
        self.key = nn.Sequential(nn.Linear(N_DIST_FEATURES + gene_dim, 32), nn.ELU(), nn.Linear(32, n_heads * key_dim))
        self.query = nn.Linear(40, n_heads * key_dim)
        self.null_key = nn.Parameter(torch.zeros(n_heads, 1, key_dim))
        self.cpg_embed = nn.Sequential(nn.Linear(40 + (n_heads + 1) * N_DIST_FEATURES, hidden), nn.ELU())
        self.gain = nn.Linear(hidden, n_heads)
        self.sample_embed = nn.Sequential(nn.Linear(n_genes, 64), nn.ELU(), nn.Linear(64, sample_dim), nn.ELU())
        self.pair_cpg = nn.Linear(hidden, hidden)
        self.pair_sample = nn.Linear(sample_dim, hidden, bias=False)
        self.pair_expr = nn.Linear(n_heads, hidden, bias=False)
        self.head = nn.Sequential(nn.ELU(), nn.Linear(hidden, hidden // 2), nn.ELU(), nn.Linear(hidden // 2, 1))

    def forward_block(
        self,
        *,
        seq: torch.Tensor,
        nbr_idx: torch.Tensor,
        nbr_dist: torch.Tensor,
        nbr_mask: torch.Tensor,
        expr: torch.Tensor,
    ) -> torch.Tensor:
        """Predictions ``(S, C)`` for C CpGs (codes ``(C, L)``, K nearest genes ``(C, K)``) x S samples ``(S, G)``."""
        n_cpg, n_near = nbr_idx.shape
        n_sample = expr.shape[0]
        f_seq = self.sequence(seq)
        phi = distance_features(nbr_dist) * nbr_mask.unsqueeze(-1)
        keys = self.key(torch.cat([phi, self.gene_embedding(nbr_idx)], dim=-1))
        keys = keys.view(n_cpg, n_near, self.n_heads, self.key_dim).transpose(1, 2)
        keys = torch.cat([self.null_key.expand(n_cpg, -1, -1, -1), keys], dim=2)
        query = self.query(f_seq).view(n_cpg, self.n_heads, 1, self.key_dim)
        mask = torch.cat([nbr_mask.new_ones(n_cpg, 1), nbr_mask], dim=1).view(n_cpg, 1, 1, n_near + 1)
        near_expr = torch.cat([expr, expr.new_zeros(n_sample, 1)], dim=1)[:, nbr_idx]  # (S, C, K)
        values = torch.cat([near_expr.permute(1, 2, 0), phi], dim=-1)  # (C, K, S + F)
        values = torch.cat([values.new_zeros(n_cpg, 1, values.shape[-1]), values], dim=1)
        attended = F.scaled_dot_product_attention(
            query, keys, values.unsqueeze(1).expand(-1, self.n_heads, -1, -1), attn_mask=mask
        ).squeeze(2)  # (C, H, S + F)
        cpg = self.cpg_embed(torch.cat([f_seq, phi[:, 0], attended[..., n_sample:].flatten(1)], dim=1))
        gated = attended[..., :n_sample] * self.gain(cpg).unsqueeze(-1)  # (C, H, S)
        pre = (
            self.pair_cpg(cpg).unsqueeze(1)
            + self.pair_sample(self.sample_embed(expr)).unsqueeze(0)
            + self.pair_expr(gated.transpose(1, 2))
        )  # (C, S, hidden)
        return torch.sigmoid(self.head(pre).squeeze(-1)).T


def n_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def init_output_bias(module: nn.Module, mean_beta: float) -> None:
    """Start the output at the training mean (logit for a sigmoid output, the value itself for a linear one)."""
    mean_beta = min(max(mean_beta, 1e-3), 1 - 1e-3)
    with torch.no_grad():
        if isinstance(module, FactorizedNet):
            module.head[-1].bias.fill_(math.log(mean_beta / (1 - mean_beta)))
        else:
            module.out.bias.fill_(mean_beta)
