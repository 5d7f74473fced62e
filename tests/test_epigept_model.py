"""EpiGePT network: parameter count, parity with the published BertModel implementation, checkpoint loading."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from epigept_published import PublishedEpiGePT, needs_safe_loader, perturb, save_lightning_checkpoint, small_config

from epiformer.models import EpiGePT, EpiGePTConfig
from epiformer.models._base import sha256
from epiformer.models.epigept._checkpoint import config_from_state, read_lightning_checkpoint

TOL = 1e-4


def _inputs(config: EpiGePTConfig, batch: int = 2, n_bins: int | None = None, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    n_bins = n_bins or config.n_bins
    codes = torch.randint(0, 5, (batch, n_bins * config.bin_size), generator=generator)
    seq = F.one_hot(codes, 5)[..., :4].float().transpose(1, 2)  # code 4 = N -> all zeros
    motifs = torch.rand(batch, n_bins, config.n_tfs, generator=generator) * 8
    motifs[motifs < 5] = 0  # most (bin, TF) pairs have no hit
    context = torch.rand(batch, config.n_tfs, generator=generator) * 3
    padded = F.pad(motifs * context[:, None, :], (0, config.tf_dim - config.n_tfs))
    return seq, padded


def _published_checkpoint(config, path, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = perturb(PublishedEpiGePT(config), seed=seed).eval()
    save_lightning_checkpoint(net, path, **kwargs)
    return net


def test_parameter_count_of_the_published_release():
    config = EpiGePTConfig()
    assert (config.hidden_size, config.bin_size, config.window, config.n_signals) == (968, 128, 128_000, 8)
    assert config.published_parameter_count == 71_343_376
    unused = 256 * 968 + (968 * 968 + 968) + 968  # word embeddings, pooler, token-type row 1
    assert EpiGePT(config).num_parameters() == 71_343_376 - unused == 70_156_608
    assert config.signals == ("DNase", "CTCF", "H3K27ac", "H3K4me3", "H3K36me3", "H3K27me3", "H3K9me3", "H3K4me1")


@pytest.mark.parametrize("head_hidden", [16, None])
def test_parameter_accounting_matches_bertmodel(head_hidden):
    config = small_config(head_hidden=head_hidden)
    published = PublishedEpiGePT(config)
    assert sum(p.numel() for p in published.parameters()) == config.published_parameter_count


def test_presets_and_validation():
    hg19, dnase = EpiGePTConfig.preset("hg19"), EpiGePTConfig.preset("dnase")
    assert hg19.head_hidden is None and hg19.conv_dropout == 0
    assert (dnase.bin_size, dnase.n_bins, dnase.window, dnase.n_layers, dnase.signals) == (
        200,
        50,
        10_000,
        16,
        ("DNase",),
    )
    with pytest.raises(ValueError, match="divide by `n_heads`"):
        EpiGePTConfig(n_heads=7)
    with pytest.raises(ValueError, match="tf_names"):
        EpiGePTConfig(tf_names=("A", "B"))
    with pytest.raises(ValueError, match="Unknown EpiGePT release"):
        EpiGePTConfig.preset("mm10")


def test_forward_shapes_and_errors():
    config = small_config()
    model = EpiGePT(config).eval()
    seq, tf = _inputs(config)
    with torch.no_grad():
        out = model(seq, tf)
        again = model(seq, tf[..., : config.n_tfs])  # unpadded TF features are padded inside
    assert out.shape == (2, 64, 8) and (out >= 0).all()
    torch.testing.assert_close(out, again)
    with pytest.raises(ValueError, match="multiple of the 128-bp bin"):
        model(seq[..., :-1], tf)
    with pytest.raises(ValueError, match=r"TF features must be \(batch, 64, 7 or 8\)"):
        model(seq, tf[..., :5])
    long_seq, long_tf = _inputs(config, batch=1, n_bins=65)
    with pytest.raises(ValueError, match="exceed the 64 learned positions"):
        model(long_seq, long_tf)


@needs_safe_loader
@pytest.mark.parametrize("head_hidden", [16, None], ids=["hg38-layout", "hg19-layout"])
def test_parity_with_published_bertmodel(tmp_path, head_hidden):
    """Same weights, same inputs: the published BertModel network and ours agree to float32 precision."""
    config = small_config(head_hidden=head_hidden)
    net = _published_checkpoint(config, tmp_path / "model.ckpt")
    names = [f"TF{i}" for i in range(config.n_tfs)]
    model = EpiGePT.from_pretrained(tmp_path / "model.ckpt", tf_names=names, n_heads=config.n_heads)
    assert model.config.variant == ("hg38" if head_hidden else "hg19")
    assert model.tf_names == tuple(names)
    assert model.checkpoint["epoch"] == 41 and len(model.checkpoint["sha256"]) == 64
    with pytest.warns(FutureWarning, match="renamed `EpiGePT.checkpoint`"):
        assert model.checkpoint_info is model.checkpoint
    seq, tf = _inputs(config)
    with torch.no_grad():
        expected, got = net(seq, tf), model(seq, tf)
    diff = (expected - got).abs().max().item()
    assert diff <= TOL, diff
    assert expected.abs().max() > 0.1  # a real comparison, not two zero tensors


@needs_safe_loader
def test_parity_full_published_release(tmp_path):
    """The hg38 release shape (71,343,376 parameters) on a full 128-kb window."""
    config = EpiGePTConfig()
    net = _published_checkpoint(config, tmp_path / "model.ckpt", optimizer_state=False)
    assert sum(p.numel() for p in net.parameters()) == 71_343_376
    model = EpiGePT.from_pretrained(tmp_path / "model.ckpt")
    assert model.config.variant == "hg38" and model.config.n_tfs == 711 and model.tf_names is None
    seq, tf = _inputs(config, batch=1)
    with torch.inference_mode():
        diff = (net(seq, tf) - model(seq, tf)).abs().max().item()
    assert diff <= TOL, diff


@needs_safe_loader
def test_checkpoint_keys_renamed_and_dnase_variant(tmp_path):
    # hg19 `EpiGePT` class: transformermodule.* and multitaskmodule.linear
    config = small_config(head_hidden=None)
    net = perturb(PublishedEpiGePT(config)).eval()
    state = {
        k.replace("encoder.", "transformermodule.", 1).replace("fc2.", "multitaskmodule.linear.", 1): v
        for k, v in net.state_dict().items()
    }
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "hg19.ckpt")
    model = EpiGePT.from_pretrained(tmp_path / "hg19.ckpt", n_heads=4)
    seq, tf = _inputs(config)
    with torch.no_grad():
        assert (net(seq, tf) - model(seq, tf)).abs().max() <= TOL
    assert model.config.variant == "hg19"
    # DNase-only: one output, pools 5,5,2,2,2 (200-bp bins)
    dnase = small_config(head_hidden=None, signals=("DNase",), pools=(5, 5, 2, 2, 2), n_bins=50)
    net = perturb(PublishedEpiGePT(dnase)).eval()
    save_lightning_checkpoint(net, tmp_path / "dnase.ckpt")
    model = EpiGePT.from_pretrained(tmp_path / "dnase.ckpt", n_heads=4)
    assert (model.config.variant, model.config.bin_size, model.config.n_bins, model.signals) == (
        "dnase",
        200,
        50,
        ("DNase",),
    )
    seq, tf = _inputs(dnase)
    with torch.no_grad():
        assert (net(seq, tf) - model(seq, tf)).abs().max() <= TOL


@needs_safe_loader
def test_loader_is_strict(tmp_path):
    config = small_config()
    net = perturb(PublishedEpiGePT(config))
    state = net.state_dict()
    assert "encoder.embeddings.word_embeddings.weight" in state and "encoder.pooler.dense.weight" in state

    extra = dict(state, **{"fc3.weight": torch.zeros(2, 2)})
    torch.save({"state_dict": extra}, tmp_path / "extra.ckpt")
    with pytest.raises(ValueError, match=r"unexpected keys 'fc3.weight'"):
        EpiGePT.from_pretrained(tmp_path / "extra.ckpt", n_heads=4)

    partial = {k: v for k, v in state.items() if "layer.1.output.dense" not in k}
    torch.save({"state_dict": partial}, tmp_path / "partial.ckpt")
    with pytest.raises(ValueError, match=r"missing keys 'encoder.encoder.layer.1.output.dense.weight'"):
        EpiGePT.from_pretrained(tmp_path / "partial.ckpt", n_heads=4)

    torch.save({"state_dict": {"weight": torch.zeros(3)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="Not an EpiGePT checkpoint"):
        EpiGePT.from_pretrained(tmp_path / "other.ckpt")

    wide = PublishedEpiGePT(small_config(n_tfs=711, tf_dim=712)).state_dict()
    with pytest.raises(ValueError, match="take 711 TFs"):
        config_from_state(wide, tf_names=["A", "B", "C"], n_heads=4)
    assert config_from_state(wide, n_heads=4).n_tfs == 711


@needs_safe_loader
def test_tf_names_from_file(tmp_path):
    config = small_config()
    net = _published_checkpoint(config, tmp_path / "model.ckpt")
    names = [f"TF{i}" for i in range(config.n_tfs)]
    (tmp_path / "tfs.txt").write_text("\n".join(names) + "\n")
    model = EpiGePT.from_pretrained(tmp_path / "model.ckpt", tf_names=tmp_path / "tfs.txt", n_heads=4)
    assert model.tf_names == tuple(names)
    assert net is not None


@needs_safe_loader
def test_save_pretrained_roundtrips(tmp_path):
    config = small_config(tf_names=tuple(f"TF{i}" for i in range(7)))
    torch.manual_seed(1)
    model = perturb(EpiGePT(config)).eval()
    seq, tf = _inputs(config)
    with torch.no_grad():
        expected = model(seq, tf)

    model.history = pd.DataFrame({"epoch": [0, 1], "train_loss": [0.5, 0.25], "val_loss": [0.75, np.nan]})
    directory = model.save_pretrained(tmp_path / "st")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    again = EpiGePT.from_pretrained(directory)
    assert again.config == config
    pd.testing.assert_frame_equal(again.history, model.history, check_dtype=False)
    assert again.checkpoint["format"] == "safetensors" and again.checkpoint["sha256"] == sha256(
        directory / "model.safetensors"
    )
    assert EpiGePT(config).history.columns.tolist() == ["epoch", "train_loss", "val_loss"]
    with pytest.raises(ValueError, match="2 `tf_names` for a model of 7 TFs"):
        EpiGePT.from_pretrained(directory, tf_names=["A", "B"])
    with torch.no_grad():
        torch.testing.assert_close(again(seq, tf), expected, rtol=0, atol=0)

    # the authors' layout: their BertModel network loads it strictly and computes the same outputs
    path = model.save_pretrained(tmp_path / "model.ckpt", format="lightning")
    ckpt = read_lightning_checkpoint(path)
    published = PublishedEpiGePT(config).eval()
    state = {k: v for k, v in ckpt["state_dict"].items() if k != "encoder.embeddings.position_ids"}
    published.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert (published(seq, tf) - expected).abs().max() <= TOL
    back = EpiGePT.from_pretrained(path, n_heads=4)
    assert back.tf_names == config.tf_names  # carried under hyper_parameters
    with torch.no_grad():
        torch.testing.assert_close(back(seq, tf), expected)
    with pytest.raises(ValueError, match="`format` must be"):
        model.save_pretrained(tmp_path / "x", format="pickle")


@needs_safe_loader
def test_callback_state_with_numpy_scalars_loads(tmp_path):
    config = small_config()
    net = perturb(PublishedEpiGePT(config))
    extra = {"loops": {"best": np.float64(0.25), "count": np.int64(3)}}
    save_lightning_checkpoint(net, tmp_path / "model.ckpt", extra=extra)
    ckpt = read_lightning_checkpoint(tmp_path / "model.ckpt")
    assert ckpt["loops"]["best"] == 0.25 and ckpt["epoch"] == 41
    callbacks = list(ckpt["callbacks"])
    assert [c.__name__ for c in callbacks] == ["EarlyStopping", "ModelCheckpoint"]
    assert all(c.__module__ == "epiformer.models.epigept._checkpoint" for c in callbacks)  # inert stand-ins


def test_folder_from_before_the_sha256_and_history_loads_and_a_swapped_file_is_refused(tmp_path):
    import json

    from safetensors.torch import save_file

    config = small_config()
    torch.manual_seed(2)
    model = perturb(EpiGePT(config)).eval()
    old = tmp_path / "old"
    old.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(old / "model.safetensors"))
    meta = {"format": "epiformer-epigept", "epiformer_version": "0.1", "config": config.to_dict()}
    meta["checkpoint"] = {"variant": "hg38", "epoch": 41, "source_sha256": "ab" * 32}
    (old / "config.json").write_text(json.dumps(meta))
    loaded = EpiGePT.from_pretrained(old)
    assert loaded.history.empty and loaded.checkpoint["source_sha256"] == "ab" * 32
    seq, tf = _inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(seq, tf), model(seq, tf), rtol=0, atol=0)
    # re-saved: the provenance of the original file is kept
    again = json.loads((loaded.save_pretrained(tmp_path / "new") / "config.json").read_text())
    assert again["checkpoint"] == meta["checkpoint"] and len(again["sha256"]) == 64

    other = EpiGePT(config)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "new" / "model.safetensors"))
    with pytest.raises(ValueError, match="the weights were replaced"):
        EpiGePT.from_pretrained(tmp_path / "new")
