"""Checkpoints: the authors' layout, epiformer's safetensors, strict refusal of anything else."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
import torch

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab

PROBES = [f"cg{i:08d}" for i in range(40)]


def _model(**kw) -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(PROBES), **{"d_model": 16, "n_layers": 2, "n_heads": 2, **kw})


def _published(folder: Path, model: MethylGPT, *, args: dict | None = None, state=None) -> Path:
    """The released layout: a raw state dict .pt with flash-attention keys, vocab.json, args.json."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict() if state is None else state, folder / "best_model.pt")
    model.vocab.to_json(folder / "vocab.json")
    if args is not None:
        (folder / "args.json").write_text(json.dumps(args))
    return folder


def _same_weights(a: MethylGPT, b: MethylGPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_published_keys_are_the_state_dict():
    keys = list(_model().state_dict())
    assert "transformer_encoder.layers.1.self_attn.Wqkv.weight" in keys
    assert {k for k in keys if k.startswith("cls_decoder._decoder")} == {
        f"cls_decoder._decoder.{i}.{p}" for i in (0, 2, 3, 5) for p in ("weight", "bias")
    }
    assert {k for k in keys if k.startswith("mvc_decoder")} == {
        "mvc_decoder.gene2query.weight",
        "mvc_decoder.gene2query.bias",
        "mvc_decoder.W.weight",
    }
    assert len(keys) == 9 + 2 * 12 + 6 + 10 + 3


def test_published_parameter_counts():
    """3.33M / 7.01M parameters for d = 64 / 128 with the 49,156-CpG vocabulary (the README's 3M / 7M)."""
    vocab = MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(49_156)])
    with torch.device("meta"):
        counts = [sum(p.numel() for p in MethylGPT(vocab, d_model=d).parameters()) for d in (64, 128)]
    assert [round(c / 1e6, 2) for c in counts] == [3.33, 7.01]


def test_published_layout_infers_shapes(tmp_path):
    model = _model(d_model=24, n_layers=3, n_heads=3)
    folder = _published(tmp_path / "tiny", model, args={"nhead": 3, "layer_size": 24, "nlayers": 3, "dropout": 0.2})
    loaded = MethylGPT.from_pretrained(folder)
    assert loaded.config | {"dropout": 0.2} == model.config | {"dropout": 0.2}
    assert loaded.dropout == 0.2 and not loaded.training
    assert _same_weights(loaded, model)
    assert loaded.checkpoint["format"] == "published"
    assert loaded.checkpoint["path"].endswith("best_model.pt") and len(loaded.checkpoint["sha256"]) == 64


def test_heads_default_explicit_and_conflict(tmp_path):
    model = _model(d_model=16, n_heads=2)
    folder = _published(tmp_path / "noargs", model)
    with pytest.raises(ValueError, match="attention heads is not recorded.*n_heads="):
        MethylGPT.from_pretrained(folder)  # no args.json: a guess would change every output
    assert MethylGPT.from_pretrained(folder, n_heads=2).n_heads == 2
    folder = _published(tmp_path / "args", model, args={"nhead": 2})
    assert MethylGPT.from_pretrained(folder).n_heads == 2
    with pytest.raises(ValueError, match="contradicts"):
        MethylGPT.from_pretrained(folder, n_heads=4)


def test_heads_change_the_output(tmp_path):
    model = _model(n_heads=2)
    folder = _published(tmp_path / "m", model)
    ids, values, _ = model.tokenize(torch.rand(2, len(PROBES)))
    with torch.no_grad():
        right = MethylGPT.from_pretrained(folder, n_heads=2).encode(ids, values)
        wrong = MethylGPT.from_pretrained(folder, n_heads=4).encode(ids, values)
        torch.testing.assert_close(right, model.eval().encode(ids, values))
    assert (right - wrong).abs().max() > 1e-3


def test_torch_attention_layout_and_bare_file(tmp_path):
    model = _model()
    state = {
        k.replace("self_attn.Wqkv.weight", "self_attn.in_proj_weight").replace(
            "self_attn.Wqkv.bias", "self_attn.in_proj_bias"
        ): v
        for k, v in model.state_dict().items()
    }
    folder = _published(tmp_path / "torch", model, state=state, args={"nhead": 2})
    assert _same_weights(MethylGPT.from_pretrained(folder), model)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    loaded = MethylGPT.from_pretrained(bare, vocab=folder / "vocab.json", n_heads=2)
    assert _same_weights(loaded, model)
    with pytest.raises(FileNotFoundError, match="vocab"):
        MethylGPT.from_pretrained(bare)


def test_save_pretrained_round_trip(tmp_path):
    model = _model(dropout=0.3)
    model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["format"] == "epiformer.methylgpt" and config["n_heads"] == 2 and config["dropout"] == 0.3
    loaded = MethylGPT.from_pretrained(tmp_path / "saved")
    assert loaded.config == model.config and loaded.vocab == model.vocab
    assert _same_weights(loaded, model)
    assert loaded.checkpoint["format"] == "epiformer"
    assert loaded.checkpoint["sha256"] == config["sha256"]


def test_history_survives_save_and_load(tmp_path):
    import pandas as pd

    model = _model()
    model.history = pd.DataFrame(
        {"epoch": [0, 1], "train_loss": [0.31, 0.1234567891234], "val_loss": [0.4, float("nan")]}
    )
    model.save_pretrained(tmp_path / "saved")
    loaded = MethylGPT.from_pretrained(tmp_path / "saved")
    pd.testing.assert_frame_equal(loaded.history, model.history)
    assert MethylGPT.from_pretrained(_published(tmp_path / "published", model, args={"nhead": 2})).history.empty


def test_refuses_weights_swapped_after_saving(tmp_path):
    _model().save_pretrained(tmp_path / "a")
    other = _model()
    with torch.no_grad():
        other.encoder.embedding.weight.add_(1.0)
    other.save_pretrained(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="the weights were replaced"):
        MethylGPT.from_pretrained(tmp_path / "a")


def test_fp16_weights_load_as_float32(tmp_path):
    model = _model()
    state = {k: v.half() for k, v in model.state_dict().items()}
    loaded = MethylGPT.from_pretrained(_published(tmp_path / "half", model, state=state, args={"nhead": 2}))
    assert loaded.encoder.embedding.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.encoder.embedding.weight, state["encoder.embedding.weight"].float())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("shape", r"mis-shaped tensors \(1\): transformer_encoder\.layers\.1\.linear2\.weight: \(16, 15\)"),
        ("missing", r"missing keys \(1\): mvc_decoder\.W\.weight"),
        ("extra", r"unexpected keys \(1\): transformer_encoder\.layers\.0\.self_attn\.rotary\.freq"),
        ("gap", r"missing keys \(12\): transformer_encoder\.layers\.1\."),
    ],
)
def test_refuses_wrong_keys(tmp_path, change, message):
    model = _model()
    state = model.state_dict()
    if change == "shape":
        state["transformer_encoder.layers.1.linear2.weight"] = torch.zeros(16, 15)
    elif change == "missing":
        del state["mvc_decoder.W.weight"]
    elif change == "extra":
        state["transformer_encoder.layers.0.self_attn.rotary.freq"] = torch.zeros(4)
    else:  # layers 0 and 2: layer 1 is missing
        state = {k.replace("layers.1.", "layers.2."): v for k, v in state.items()}
    folder = _published(tmp_path / change, model, state=state, args={"nhead": 2})
    with pytest.raises(ValueError, match=message):
        MethylGPT.from_pretrained(folder)


def test_refuses_vocabulary_of_another_model(tmp_path):
    model = _model()
    folder = _published(tmp_path / "m", model, args={"nhead": 2})
    MethylGPTVocab.from_probes(PROBES[:-1]).to_json(folder / "vocab.json")
    with pytest.raises(ValueError, match="43 rows but the vocabulary has 42 tokens"):
        MethylGPT.from_pretrained(folder)


class _Payload:
    """Unpickling this creates a file: the proof that code from the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def test_refuses_pickled_objects_without_running_them(tmp_path):
    marker = tmp_path / "executed"
    model = _model()
    state = dict(model.state_dict())
    state["encoder.embedding.weight"] = _Payload(marker)
    folder = _published(tmp_path / "evil", model, state=state, args={"nhead": 2})
    with pytest.raises(ValueError, match="not a plain state dict"):
        MethylGPT.from_pretrained(folder)
    assert not marker.exists()
    torch.load(folder / "best_model.pt", weights_only=False)["encoder.embedding.weight"].close()  # it does run code
    assert marker.exists()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([torch.zeros(2)], "holds a list, not a state dict"),
        ({"encoder.embedding.weight": torch.zeros(2), "step": 3}, "not named tensors: 'step'"),
        ({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, "training checkpoint"),
    ],
)
def test_refuses_non_state_dicts(tmp_path, obj, message):
    path = tmp_path / "weights.pt"
    torch.save(obj, path)
    with pytest.raises(ValueError, match=message):
        MethylGPT.from_pretrained(path, vocab=MethylGPTVocab.from_probes(PROBES))


def test_folder_problems(tmp_path):
    with pytest.raises(FileNotFoundError, match="Google Drive"):
        MethylGPT.from_pretrained(tmp_path / "absent")
    model = _model()
    folder = _published(tmp_path / "two", model, args={"nhead": 2})
    torch.save(model.state_dict(), folder / "other.pt")
    with pytest.raises(ValueError, match=r"one weight file .* found best_model\.pt, other\.pt"):
        MethylGPT.from_pretrained(folder)


def test_args_disagreeing_with_shapes_warns(tmp_path):
    folder = _published(tmp_path / "m", _model(), args={"nhead": 2, "layer_size": 128})
    with pytest.warns(UserWarning, match="layer_size=128 but the weights have d_model=16"):
        assert MethylGPT.from_pretrained(folder).d_model == 16


def test_exported():
    assert ef.models.MethylGPT is MethylGPT and ef.models.MethylGPTVocab is MethylGPTVocab
