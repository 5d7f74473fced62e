"""The MethylGPT module and its vocabulary: tokens, masking, compaction, heads, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from anndata import AnnData

from epiformer.models import MethylGPT, MethylGPTVocab

PROBES = [f"cg{i:08d}" for i in range(50)]


@pytest.fixture
def model() -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(PROBES), d_model=16, n_layers=3, n_heads=2).eval()


def _betas(n: int = 5, rate: float = 0.3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, len(PROBES), generator=gen)
    x[torch.rand(n, len(PROBES), generator=gen) < rate] = float("nan")
    return x


# ------------------------------------------------------------------------------------------------ vocabulary


def test_vocab_layout_and_json(tmp_path):
    vocab = MethylGPTVocab.from_probes(["cg2", "cg1"])
    assert vocab.stoi == {"<pad>": 0, "<cls>": 1, "<eoc>": 2, "cg2": 3, "cg1": 4}
    assert list(vocab.probes) == ["cg2", "cg1"] and list(vocab.probe_ids) == [3, 4]
    assert (len(vocab), vocab["cg1"], vocab.pad_id, vocab.cls_id) == (5, 4, 0, 1)
    with pytest.raises(KeyError, match="cg3"):
        vocab["cg3"]
    path = vocab.to_json(tmp_path / "vocab.json")
    assert json.loads(path.read_text()) == vocab.stoi
    assert MethylGPTVocab.from_json(path) == vocab


@pytest.mark.parametrize(
    ("stoi", "message"),
    [
        ({"<pad>": 0, "<cls>": 1, "<eoc>": 2, "cg1": 4}, "without gaps"),
        ({"<pad>": 0, "<cls>": 1, "<eoc>": 2, "cg1": 2}, "without gaps"),
        ({"<cls>": 0, "<pad>": 1, "<eoc>": 2, "cg1": 3}, "must start with"),
        ({"<pad>": 0, "<cls>": 1, "<eoc>": 2}, "no CpG"),
    ],
)
def test_vocab_refuses_malformed(stoi, message):
    with pytest.raises(ValueError, match=message):
        MethylGPTVocab(stoi)


def test_vocab_match_and_coverage():
    vocab = MethylGPTVocab.from_probes(["cg1", "cg2", "cg3", "cg4"])
    var = pd.DataFrame({"id": ["cg4", "x", "cg2"]}, index=["a", "b", "c"])
    adata = AnnData(np.zeros((2, 3), dtype=np.float32), var=var)
    in_data, in_vocab = vocab.match(adata, var_key="id")
    assert in_data.tolist() == [0, 2] and in_vocab.tolist() == [3, 1]
    assert vocab.coverage(adata, var_key="id") == {"n_vocab": 4, "n_found": 2, "fraction_found": 0.5, "n_unused": 1}
    assert vocab.coverage(adata)["n_found"] == 0


# ------------------------------------------------------------------------------------------------ tokens


def test_tokenize(model):
    x = torch.tensor([[0.25, float("nan"), 1.0] + [0.5] * 47, [float("nan")] * 50])
    ids, values, kpm = model.tokenize(x)
    assert ids.shape == values.shape == kpm.shape == (2, 51)
    assert ids[:, 0].tolist() == [1, 1] and ids[0, 1:4].tolist() == [3, 4, 5]
    assert values[0, :4].tolist() == [0.0, 0.25, -2.0, 1.0]
    assert kpm[0, :4].tolist() == [False, False, True, False] and kpm[1, 1:].all() and not kpm[:, 0].any()
    _, _, none = model.tokenize(x, missing="legacy")
    assert none is None
    assert model.tokenize(torch.rand(2, 50))[2] is None
    with pytest.raises(ValueError, match="'mask'"):
        model.tokenize(x, missing="drop")
    with pytest.raises(ValueError, match="one id per column"):
        model.tokenize(x, cpg_ids=torch.arange(3, 10))


def test_tokenize_compact(model):
    x = torch.tensor([[0.1, float("nan"), 0.3, float("nan")], [float("nan"), 0.6, float("nan"), float("nan")]])
    ids, values, kpm = model.tokenize(x, cpg_ids=torch.tensor([10, 11, 12, 13]), compact=True)
    assert ids.tolist() == [[1, 10, 12], [1, 11, 0]]
    assert torch.allclose(values, torch.tensor([[0.0, 0.1, 0.3], [0.0, 0.6, -2.0]]))
    assert kpm.tolist() == [[False, False, False], [False, False, True]]


# ------------------------------------------------------------------------------------------------ encoder


def test_mask_mode_excludes_missing_cpgs_as_keys(model):
    """Changing a missing CpG's value or its id leaves every attended output unchanged; in legacy mode it does not."""
    x = _betas()
    ids, values, kpm = model.tokenize(x)
    with torch.no_grad():
        ref = model.encode(ids, values, key_padding_mask=kpm)
        other_ids = torch.where(kpm, torch.full_like(ids, 7), ids)
        other_values = torch.where(kpm, torch.full_like(values, 0.9), values)
        out = model.encode(other_ids, other_values, key_padding_mask=kpm)
        legacy = model.encode(other_ids, other_values)
    torch.testing.assert_close(out[~kpm], ref[~kpm], rtol=0, atol=1e-6)
    assert (legacy[~kpm] - ref[~kpm]).abs().max() > 1e-3


def test_compact_equals_masked_formulation(model):
    x = _betas(n=6, rate=0.4)
    x[2] = float("nan")  # nothing observed: <cls> alone
    with torch.no_grad():
        full = model.encode(*model.tokenize(x)[:2], key_padding_mask=model.tokenize(x)[2])
        ids, values, kpm = model.tokenize(x, compact=True)
        cls = model.encode(ids, values, key_padding_mask=kpm, cls_only=True)
        singles = torch.cat(
            [model.encode(*model.tokenize(x[i : i + 1], compact=True)[:2], cls_only=True) for i in range(6)]
        )
    assert ids.shape[1] < full.shape[1]
    torch.testing.assert_close(cls, full[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(singles, full[:, 0], rtol=0, atol=1e-5)


def test_order_of_cpgs_does_not_matter(model):
    """No positional encoding: the sample embedding is invariant to the CpG order."""
    x = _betas(rate=0.1)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = model.encode(*model.tokenize(x)[:2], key_padding_mask=model.tokenize(x)[2], cls_only=True)
        ids, values, kpm = model.tokenize(x[:, perm], cpg_ids=torch.as_tensor(model.vocab.probe_ids)[perm])
        b = model.encode(ids, values, key_padding_mask=kpm, cls_only=True)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_forward_heads(model):
    x = _betas(n=3)
    ids, values, kpm = model.tokenize(x)
    with torch.no_grad():
        out = model(ids, values, key_padding_mask=kpm, mvc=True, cls=True)
        hidden = model.encode(ids, values, key_padding_mask=kpm)
        _, cpg_emb = model.embed_tokens(ids, values)
    assert out["cell_emb"].shape == (3, 16) and out["mlm_output"].shape == out["mvc_output"].shape == (3, 51)
    assert out["cls_output"].shape == (3, 1)
    torch.testing.assert_close(out["cell_emb"], hidden[:, 0])
    torch.testing.assert_close(out["mlm_output"], model.decoder.fc(hidden)[..., 0])
    # MVC: W sigmoid(gene2query(e_i)) . cell_emb with e_i the input CpG embedding after enc_norm
    query = model.mvc_decoder.W(torch.sigmoid(model.mvc_decoder.gene2query(cpg_emb)))
    torch.testing.assert_close(out["mvc_output"], (query * out["cell_emb"][:, None]).sum(-1))
    assert set(model(ids, values)) == {"cell_emb", "mlm_output"}


def test_dropout_only_in_training(model):
    ids, values, _ = model.tokenize(_betas(n=2, rate=0.0))
    with torch.no_grad():
        a, b = model.encode(ids, values), model.encode(ids, values)
        model.train()
        c = model.encode(ids, values)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_gradients_flow(model):
    model.train()
    ids, values, kpm = model.tokenize(_betas(n=2))
    out = model(ids, values, key_padding_mask=kpm, mvc=True)
    (out["mlm_output"].square().mean() + out["mvc_output"].square().mean()).backward()
    assert model.transformer_encoder.layers[0].self_attn.Wqkv.weight.grad.abs().sum() > 0
    assert model.encoder.embedding.weight.grad[0].abs().sum() == 0  # <pad> never gets a gradient


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of five queries, so every path of the chunked attention runs on small inputs."""
    from epiformer.models.methylgpt import _dropout_attention

    monkeypatch.setattr(_dropout_attention, "CHUNK_SCORES", 2 * 20 * 5)


def _qkv_mask(n=37, head_dim=8, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, n, head_dim, generator=gen, dtype=dtype) for _ in range(3))
    mask = torch.rand(2, 1, 1, n, generator=gen) > 0.3
    mask[..., 0] = True
    return q, k, v, mask


def test_attention_with_dropout_is_attention_without_dropout(small_chunks):
    """p = 0: outputs and gradients of the chunked kernel equal PyTorch's attention, masked keys excluded."""
    from epiformer.models.methylgpt._dropout_attention import attention_with_dropout

    q, k, v, mask = _qkv_mask()
    grad = torch.randn(2, 2, 37, 8, generator=torch.Generator().manual_seed(1))
    results = []
    for fn in (attention_with_dropout, lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3])):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves, mask, 0.0)
        out.backward(grad)
        results.append([out.detach(), *(t.grad for t in leaves)])
    for ours, ref in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert torch.all(results[0][2][:, :, ~mask[0, 0, 0]][:1] == 0)  # a masked key gets no gradient


def test_attention_with_dropout_gradients(small_chunks):
    """With dropout the kernel is a deterministic function of its seed whose backward pass is exact."""
    from epiformer.models.methylgpt._dropout_attention import _DropoutAttention

    q, k, v, mask = _qkv_mask(23, 4, torch.float64)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(lambda *x: _DropoutAttention.apply(*x, mask, 0.3, 1234), leaves)


def test_attention_with_dropout_is_seeded_and_unbiased(small_chunks):
    """Same global seed, same masks; the average over many masks is attention without dropout."""
    from epiformer.models.methylgpt._dropout_attention import attention_with_dropout

    q, k, v, mask = _qkv_mask()
    torch.manual_seed(3)
    a = attention_with_dropout(q, k, v, mask, 0.5)
    torch.manual_seed(3)
    b = attention_with_dropout(q, k, v, mask, 0.5)
    c = attention_with_dropout(q, k, v, mask, 0.5)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    draws = torch.stack([attention_with_dropout(q, k, v, mask, 0.5) for _ in range(1000)])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.all((draws.mean(0) - ref).abs() <= 5 * draws.std(0) / 1000**0.5 + 1e-6)  # within 5 standard errors
    assert (a - ref).abs().max() > 0.1


def test_dropout_keep_statistics():
    """Drop rate p, no correlation between neighbours, lanes or keys."""
    from epiformer.models.methylgpt._dropout_attention import dropout_keep

    def keep(key):
        return dropout_keep(key, (1 << 21,), 0.1, dtype=torch.float64, device=torch.device("cpu"))

    a, b = keep(7), keep(8)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - 0.9) < 1e-3
    assert torch.equal(a, keep(7))
    for x, y in ((a[:-1], a[1:]), (a[0::2], a[1::2]), (a, b)):
        assert abs(torch.corrcoef(torch.stack([x, y]))[0, 1].item()) < 5e-3


_MEMORY = """
import resource, torch
from epiformer.models import MethylGPT, MethylGPTVocab
n = 16_384
torch.manual_seed(0)
model = MethylGPT(MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(n)]), n_layers=1).eval()
x = torch.rand(1, n)
x[:, ::3] = float("nan")
ids, values, kpm = model.tokenize(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.inference_mode():
    model.encode(ids, values, key_padding_mask=kpm)
    model.encode(ids, values)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 5),
    reason="torch 2.1's CPU attention builds the score matrix (7.6 GB here); releases before 2.5 are not measured",
)
def test_attention_never_materialises_the_score_matrix():
    """16,385 tokens x 4 heads: a score matrix would take 4.3 GB; the layer must stay far below."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_MEMORY)], capture_output=True, text=True, check=True)
    assert float(done.stdout.split()[-1]) < 300, done.stdout


_TRAIN_MEMORY = """
import resource, torch
from epiformer.models import MethylGPT, MethylGPTVocab
n = 8_192
torch.manual_seed(0)
model = MethylGPT(MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(n)]), n_layers=1).train()
x = torch.rand(1, n)
x[:, ::50] = float("nan")
ids, values, kpm = model.tokenize(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = model(ids, values, key_padding_mask=kpm, mvc=True)
(out["mlm_output"].square().mean() + out["mvc_output"].square().mean()).backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.slow
def test_training_with_attention_dropout_stays_linear_in_memory():
    """A training step (dropout 0.1) over 8,193 tokens: PyTorch's CPU fallback would hold 4 x 8,193^2 scores."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_TRAIN_MEMORY)], capture_output=True, text=True, check=True
    )
    assert float(done.stdout.split()[-1]) < 400, done.stdout
