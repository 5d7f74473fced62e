"""Numeric parity with the authors' implementation (``methylgpt`` 0.1.2 from PyPI, its vendored scGPT model).

The published model is built with the published configuration and random weights, saved in the released
checkpoint layout (flash-attention ``Wqkv`` keys, ``vocab.json``, ``args.json``), loaded with
``MethylGPT.from_pretrained`` and compared on the same inputs: max abs difference <= 1e-5 (float32, CPU).
Skipped only when PyPI is unreachable; any other failure to install or import fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

import epiformer as ef

sys.path.insert(0, str(Path(__file__).parent))
import methylgpt_upstream as upstream

N_PROBES = 300
ATOL = 1e-5

pytestmark = pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    try:
        theirs = upstream.build(N_PROBES)
    except upstream.PyPIUnreachable as err:
        pytest.skip(f"parity against the published implementation needs PyPI: {err}")
    upstream.randomize(theirs, seed=0)
    folder = upstream.write_checkpoint(theirs, tmp_path_factory.mktemp("published"))
    ours = ef.models.MethylGPT.from_pretrained(folder)
    return theirs.eval(), ours


@pytest.fixture(scope="module")
def betas() -> torch.Tensor:
    """Six samples: 20 % missing, none missing, 90 % missing, and values at 0 and 1."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(6, N_PROBES, generator=gen)
    x[torch.rand(6, N_PROBES, generator=gen) < 0.2] = float("nan")
    x[1] = torch.rand(N_PROBES, generator=gen)
    x[2, torch.rand(N_PROBES, generator=gen) < 0.9] = float("nan")
    x[3, :10], x[3, 10:20] = 0.0, 1.0
    return x


def _published_inputs(betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' tokenisation: <cls> (value 0) + every vocabulary CpG, NaN -> -2."""
    n = betas.shape[0]
    ids = torch.cat([torch.ones(n, 1, dtype=torch.long), torch.arange(3, N_PROBES + 3).repeat(n, 1)], dim=1)
    values = torch.cat([torch.zeros(n, 1), torch.nan_to_num(betas, nan=-2.0)], dim=1)
    return ids, values


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("missing", ["legacy", "mask"])
def test_forward_matches_published(pair, betas, missing):
    theirs, ours = pair
    ids, values = _published_inputs(betas)
    # tutorials / fine-tuning: gene_ids.eq(pad) (nothing masked); pretraining: target_values.eq(-2)
    kpm = ids.eq(0) if missing == "legacy" else values.eq(-2.0)
    with torch.no_grad():
        ref = theirs(ids, values, src_key_padding_mask=kpm, MVC=True, CLS=True)
        ids2, values2, kpm2 = ours.tokenize(betas, missing=missing)
        got = ours(ids2, values2, key_padding_mask=kpm2, mvc=True, cls=True)
    assert torch.equal(ids2, ids) and torch.equal(values2, values)
    assert (kpm2 is None) == (missing == "legacy")
    attended = ~kpm  # in evaluation mode PyTorch zero-fills the outputs of key-masked positions
    assert _max_diff(ref["cell_emb"], got["cell_emb"]) <= ATOL
    assert _max_diff(ref["mlm_output"][attended], got["mlm_output"][attended]) <= ATOL
    assert _max_diff(ref["mvc_output"], got["mvc_output"]) <= ATOL
    assert _max_diff(ref["cls_output"], got["cls_output"]) <= ATOL


def test_masked_positions_match_published_training_path(pair, betas):
    """Without the inference fast path, PyTorch computes key-masked positions as queries too: so do we."""
    theirs, ours = pair
    plain = upstream.build(N_PROBES, dropout=0.0)
    plain.load_state_dict(theirs.state_dict())
    plain.train()
    ids, values = _published_inputs(betas)
    with torch.no_grad():
        ref = plain(ids, values, src_key_padding_mask=values.eq(-2.0))
        ids2, values2, kpm2 = ours.tokenize(betas, missing="mask")
        got = ours(ids2, values2, key_padding_mask=kpm2)
    assert _max_diff(ref["mlm_output"], got["mlm_output"]) <= ATOL
    assert _max_diff(ref["cell_emb"], got["cell_emb"]) <= ATOL


@pytest.mark.parametrize("missing", ["legacy", "mask"])
def test_embed_matches_published(pair, betas, missing):
    """The whole tool: shuffled columns, an unknown CpG, a vocabulary CpG absent from the data."""
    theirs, ours = pair
    probes = np.asarray(ours.vocab.probes)
    order = np.random.default_rng(0).permutation(N_PROBES)
    present, absent = order[:-1], order[-1:]
    X = np.column_stack([betas.numpy()[:, present], np.full(len(betas), 0.5, dtype=np.float32)])
    adata = AnnData(X=X, var=pd.DataFrame(index=[*probes[present], "cg99999999"]))
    seen = betas.clone()
    seen[:, absent] = float("nan")  # the model reads a vocabulary CpG absent from the data as missing
    ids, values = _published_inputs(seen)
    kpm = ids.eq(0) if missing == "legacy" else values.eq(-2.0)
    with torch.no_grad():
        ref = theirs(ids, values, src_key_padding_mask=kpm)["cell_emb"].numpy()
    ef.tl.embed(adata, ours, missing=missing, batch_size=4, device="cpu", progress=False)
    np.testing.assert_allclose(adata.obsm["X_methylgpt"], ref, rtol=0, atol=ATOL)


def test_impute_matches_published_mlm(pair, betas):
    """Missing values become -1 (attended) and get the MLM prediction, clipped to [0, 1]."""
    theirs, ours = pair
    ids, values = _published_inputs(betas)
    masked = values.masked_fill(values.eq(-2.0), -1.0)
    with torch.no_grad():
        ref = theirs(ids, masked, src_key_padding_mask=ids.eq(0))["mlm_output"][:, 1:].clamp(0, 1).numpy()
    adata = AnnData(X=betas.numpy().copy(), var=pd.DataFrame(index=np.asarray(ours.vocab.probes)))
    ef.tl.impute(adata, ours, batch_size=4, device="cpu", progress=False)
    missing = np.isnan(adata.X)
    np.testing.assert_allclose(adata.layers["methylgpt_imputed"][missing], ref[missing], rtol=0, atol=ATOL)
