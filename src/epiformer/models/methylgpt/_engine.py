"""AnnData rows <-> MethylGPT tokens: vocabulary alignment, coverage, chunked rows, and the inference loops.

The tools (`ef.tl.embed`, `ef.tl.impute`, `ef.tl.attention`, `ef.tl.pretrain`, `ef.tl.finetune`) validate their
arguments, call one function here, and write what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from anndata import AnnData

from epiformer._constants import Key
from epiformer._probe_ids import check_coverage, vocab_coverage
from epiformer._utils import get_matrix, progress_bar, read_columns, select_modality, to_dense_float
from epiformer._validation import check_betas, warn_all_missing_rows
from epiformer.models._base import check_model, on_device
from epiformer.models.methylgpt._config import check_missing_mode
from epiformer.models.methylgpt._heads import sample_embeddings
from epiformer.models.methylgpt._module import MethylGPT

#: Rows read from the data matrix at a time.
CHUNK_ROWS = 256
#: Attention scores held at once by :func:`received_attention` (floats).
CHUNK_SCORES = 1 << 24


def check_methylgpt(model: Any, batch_size: int) -> None:
    """Raise unless `model` is a MethylGPT and `batch_size` a positive integer."""
    check_model(model, MethylGPT, how="load one with `ef.models.MethylGPT.from_pretrained(path)`")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        msg = f"`batch_size` must be a positive integer, got {batch_size!r}."
        raise ValueError(msg)


@dataclass
class ModelInputs:
    """The data matrix and where the model's CpGs are in it."""

    X: Any
    """The matrix (dense, sparse or backed)."""
    in_data: np.ndarray
    """Columns of `X` that are vocabulary CpGs."""
    in_vocab: np.ndarray
    """Their positions in the vocabulary's probe list."""
    coverage: dict[str, int | float]
    """`n_vocab`, `n_found`, `fraction_found`, `n_unused`."""
    n_observed: np.ndarray
    """Observed (non-NaN) vocabulary CpGs per sample."""
    all_missing: list[str] = field(default_factory=list)
    """Samples without any observed vocabulary CpG."""

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, betas)``: float32 values of the vocabulary CpGs, `CHUNK_ROWS` samples at a time."""
        for start in range(0, self.X.shape[0], CHUNK_ROWS):
            yield start, read_columns(self.X[start : start + CHUNK_ROWS], self.in_data)

    def cpg_ids(self, model: MethylGPT) -> torch.Tensor:
        """Token ids of the data's vocabulary CpGs, in input order."""
        return torch.as_tensor(np.asarray(model.vocab.probe_ids)[self.in_vocab])

    def tokens(
        self, model: MethylGPT, betas: np.ndarray, *, missing: str, compact: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Token ids, values and key mask of rows of `betas` (input columns; NaN = missing, -1 = masked).

        With ``missing="mask"`` only the data's vocabulary CpGs are tokens (missing ones are not attended;
        `compact` drops them from the sequence); with ``"legacy"`` every vocabulary CpG is a token.
        """
        if missing == "mask":
            return model.tokenize(torch.from_numpy(betas), cpg_ids=self.cpg_ids(model), missing="mask", compact=compact)
        full = np.full((len(betas), len(model.vocab.probes)), np.nan, dtype=np.float32)
        full[:, self.in_vocab] = betas
        return model.tokenize(torch.from_numpy(full), missing="legacy")


def prepare_inputs(adata: AnnData, model: MethylGPT, *, layer: str | None, var_key: str | None) -> ModelInputs:
    """Match the data to the model's vocabulary, check the coverage and the values; nothing is modified.

    Raises if no vocabulary CpG is in the data or values are not betas; warns below 50 % coverage and about
    samples with no observed vocabulary CpG.
    """
    X = get_matrix(adata, layer)
    vocab = model.vocab
    in_data, in_vocab = vocab.match(adata, var_key=var_key)
    coverage = vocab_coverage(len(vocab.probes), len(in_data), adata.n_vars)
    n_vocab, n_found = coverage["n_vocab"], coverage["n_found"]
    hint = (
        "Check that the CpG IDs are Illumina probe IDs (pass `var_key=` if they are in a `var` column) and collapse "
        "EPICv2 suffixes (cg..._TC21) with `ef.pp.harmonize_probes`."
    )
    if n_found == 0:
        names = ", ".join(map(str, adata.var_names[:3]))
        msg = f"None of the model's {n_vocab:,} CpGs is in the data (CpG IDs such as {names}). {hint}"
        raise ValueError(msg)
    check_coverage(coverage, who="the model", fallback="treated as missing", hint=hint)
    n_observed = np.empty(adata.n_obs, dtype=np.int64)
    inputs = ModelInputs(X, in_data, in_vocab, coverage, n_observed)
    for start, betas in inputs.chunks():
        check_betas(betas, what="The methylation matrix")
        n_observed[start : start + len(betas)] = (~np.isnan(betas)).sum(axis=1)
    if adata.n_obs and not n_observed.any():
        msg = (
            f"Every value of the model's {n_found:,} CpGs in the data is missing (NaN), so there is nothing to "
            "compute on. Check the layer (`layer=`)."
        )
        raise ValueError(msg)
    has_value = np.where(n_observed > 0, 0.0, np.nan)[:, None]
    inputs.all_missing = warn_all_missing_rows(has_value, adata.obs_names, what="samples (among the model's CpGs)")
    return inputs


def checked_inputs(
    data: Any,
    model: MethylGPT,
    *,
    mod: str | None,
    layer: str | None,
    var_key: str | None,
    batch_size: int,
    missing: str,
) -> tuple[AnnData, ModelInputs]:
    """The checks every MethylGPT tool makes, then the methylation AnnData (of a MuData: `mod`) and its inputs."""
    check_methylgpt(model, batch_size)
    check_missing_mode(missing)
    adata = select_modality(data, mod, default=Key.mod.methyl)
    return adata, prepare_inputs(adata, model, layer=layer, var_key=var_key)


def read_all(inputs: ModelInputs) -> np.ndarray:
    """Every row of the vocabulary CpGs as one float32 matrix (NaN = missing)."""
    betas = np.full((inputs.X.shape[0], len(inputs.in_data)), np.nan, dtype=np.float32)
    for start, chunk in inputs.chunks():
        betas[start : start + len(chunk)] = chunk
    return betas


def provenance(model: MethylGPT, inputs: ModelInputs, **params: Any) -> dict[str, Any]:
    """The settings recorded in `uns`: checkpoint, model shape, coverage and the call's parameters."""
    checkpoint = model.checkpoint or {}
    return {
        "checkpoint": checkpoint.get("path", "none (weights not loaded from a file)"),
        "checkpoint_sha256": checkpoint.get("sha256", ""),
        "weights": model.weights_source,
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "n_heads": model.n_heads,
        **inputs.coverage,
        **params,
    }


def embed(
    model: MethylGPT,
    inputs: ModelInputs,
    *,
    missing: str,
    batch_size: int,
    device: Any,
    progress: bool,
    readout: str = "cls",
) -> tuple[np.ndarray, str]:
    """Embeddings ``(n_obs, d_model)`` of every sample (see :func:`sample_embeddings`), and their device."""
    emb = np.empty((inputs.X.shape[0], model.d_model), dtype=np.float32)
    with (
        on_device(model, device, bf16_on_cuda=True) as dev,
        progress_bar(total=len(emb), desc="MethylGPT embedding", unit="sample", disable=not progress) as bar,
    ):
        for start, betas in inputs.chunks():
            # batch samples with similar numbers of observed CpGs, so compacted sequences carry little padding
            order = np.argsort(inputs.n_observed[start : start + len(betas)], kind="stable")
            for i in range(0, len(order), batch_size):
                rows = order[i : i + batch_size]
                ids, values, kpm = inputs.tokens(model, betas[rows], missing=missing, compact=True)
                emb[start + rows] = sample_embeddings(model, ids, values, kpm, readout=readout).float().cpu().numpy()
                bar.update(len(rows))
    return emb, str(dev)


def impute(
    model: MethylGPT, inputs: ModelInputs, *, missing: str, batch_size: int, device: Any, progress: bool
) -> tuple[np.ndarray, dict[str, int], str]:
    """The matrix with its missing vocabulary CpGs predicted by the MLM head, the counts, and the device.

    Observed values are copied bit for bit; missing values of CpGs outside the vocabulary stay NaN. The counts
    include `n_nonfinite`, the predictions that came out NaN (written as they are).
    """
    X = inputs.X
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32
    # token positions (after <cls>) of the data's vocabulary CpGs
    positions = inputs.in_vocab if missing == "legacy" else np.arange(len(inputs.in_data))
    out = np.empty(X.shape, dtype=dtype)
    n_imputed = n_samples = n_nonfinite = 0
    with (
        on_device(model, device, bf16_on_cuda=True) as dev,
        progress_bar(total=X.shape[0], desc="MethylGPT imputation", unit="sample", disable=not progress) as bar,
    ):
        for start, betas in inputs.chunks():
            stop = start + len(betas)
            out[start:stop] = to_dense_float(X[start:stop], dtype=dtype)
            holes = np.isnan(betas)
            todo = np.flatnonzero(holes.any(axis=1))
            bar.update(len(betas) - len(todo))
            for i in range(0, len(todo), batch_size):
                rows = todo[i : i + batch_size]
                masked = np.where(holes[rows], np.float32(model.mask_value), betas[rows])
                ids, values, kpm = inputs.tokens(model, masked, missing=missing)
                pred = model.mlm(model.encode(ids, values, key_padding_mask=kpm))[:, 1:]
                pred = pred[:, torch.as_tensor(positions, device=pred.device)].float().clamp(0.0, 1.0).cpu().numpy()
                block = out[start + rows][:, inputs.in_data]
                fill = holes[rows]
                block[fill] = pred[fill]
                out[(start + rows)[:, None], inputs.in_data[None, :]] = block
                n_imputed += int(fill.sum())
                n_nonfinite += int(np.isnan(pred[fill]).sum())
                n_samples += len(rows)
                bar.update(len(rows))
    counts = {
        "n_imputed": n_imputed,
        "n_samples_imputed": n_samples,
        "n_left_missing": int(np.isnan(out).sum()),
        "n_nonfinite": n_nonfinite,
    }
    return out, counts, str(dev)


def received_attention(
    q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None, *, chunk_scores: int = CHUNK_SCORES
) -> torch.Tensor:
    """Softmax attention received by every key, averaged over the real queries and the heads.

    ``softmax(q k^T / sqrt(head_dim))`` over the keys that are not masked, computed for chunks of queries so
    that at most `chunk_scores` scores exist at once (never a ``seq x seq`` matrix per sample); masked tokens
    are neither keys nor counted queries.

    Parameters
    ----------
    q, k
        ``(batch, heads, seq, head_dim)``.
    key_padding_mask
        ``(batch, seq)``, `True` for tokens that are not attended; `None` when all are.
    chunk_scores
        Scores held at once.

    Returns
    -------
    ``(batch, seq)`` float32: for each key, the mean over queries and heads of its attention probability
    (each row sums to 1 over the keys).
    """
    b, h, s, d = q.shape
    scale = d**-0.5
    keep = torch.ones(b, s, dtype=torch.bool, device=q.device) if key_padding_mask is None else ~key_padding_mask
    total = torch.zeros(b, s, dtype=torch.float32, device=q.device)
    step = max(1, chunk_scores // max(b * h * s, 1))
    for start in range(0, s, step):
        scores = (q[:, :, start : start + step].float() * scale) @ k.float().transpose(-2, -1)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1) * keep[:, None, start : start + step, None]  # real queries only
        total += probs.sum(dim=(1, 2))
    return total / (h * keep.sum(dim=1, keepdim=True).clamp(min=1))


def attention(
    model: MethylGPT,
    inputs: ModelInputs,
    *,
    layer_index: int,
    missing: str,
    batch_size: int,
    device: Any,
    progress: bool,
) -> tuple[np.ndarray, str]:
    """``(n_obs, n_found)``: attention received by each vocabulary CpG of the data in each sample (0 if missing)."""
    n_found = len(inputs.in_data)
    out = np.zeros((inputs.X.shape[0], n_found), dtype=np.float32)
    # token id -> column of `out`
    cpg_ids = inputs.cpg_ids(model)
    column = np.full(len(model.vocab), -1, dtype=np.int64)
    column[cpg_ids.numpy()] = np.arange(n_found)
    column = torch.as_tensor(column)
    layer = model.transformer_encoder.layers[layer_index].self_attn
    with (
        on_device(model, device, bf16_on_cuda=True) as dev,
        progress_bar(total=len(out), desc="MethylGPT attention", unit="sample", disable=not progress) as bar,
    ):
        for start, betas in inputs.chunks():
            for i in range(0, len(betas), batch_size):
                rows = np.arange(i, min(i + batch_size, len(betas)))
                # the data's CpGs only, in both modes (with "legacy" its missing CpGs are attended, value -2)
                ids, values, kpm = model.tokenize(
                    torch.from_numpy(betas[rows]), cpg_ids=cpg_ids, missing=missing, compact=missing == "mask"
                )
                tokens, _ = model.embed_tokens(ids, values)
                hidden = model.transform(tokens, key_padding_mask=kpm, n_layers=layer_index)
                q, k, _ = layer.project(hidden)
                received = received_attention(q, k, kpm).cpu()
                cols = column[ids.cpu()]
                real = cols >= 0  # drops <cls> and <pad>
                sample = torch.as_tensor(start + rows)[:, None].expand_as(cols)
                out[sample[real].numpy(), cols[real].numpy()] = received[real].numpy()
                bar.update(len(rows))
    return out, str(dev)
