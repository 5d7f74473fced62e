"""The published checkpoints by name: the table, the offline error, the cache in the published layout, sha256 sums."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from epigept_published import PublishedEpiGePT, needs_safe_loader, perturb, save_lightning_checkpoint, small_config

import epiformer as ef
from epiformer.models import EpiGePT, MethylGPT, MethylGPTVocab, _registry
from epiformer.models._base import sha256
from epiformer.models.methylgpt._checkpoint import load_pretrained

PROBES = [f"cg{i:08d}" for i in range(40)]
COLUMNS = [
    "model",
    "publication",
    "doi",
    "source",
    "files",
    "size",
    "parameters",
    "genome",
    "licence",
    "how_to_obtain",
    "notes",
    "folder",
    "cached",
]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty epiformer cache of this test's own."""
    monkeypatch.setenv("EPIFORMER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pretrained"


def _methylgpt(folder: Path, seed: int = 0) -> MethylGPT:
    """The authors' Google Drive layout: vocab.json, args.json and one raw state-dict .pt (flash-attention keys)."""
    torch.manual_seed(seed)
    model = MethylGPT(MethylGPTVocab.from_probes(PROBES), d_model=16, n_layers=2, n_heads=2)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "tiny-best_model_epoch10.pt")
    model.vocab.to_json(folder / "vocab.json")
    (folder / "args.json").write_text(json.dumps({"layer_size": 16, "nlayers": 2, "nhead": 2, "dropout": 0.1}))
    return model


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_list_pretrained_names_every_published_checkpoint_with_its_source(cache):
    table = ef.models.list_pretrained()
    assert list(table.columns) == COLUMNS and table.index.name == "name"
    assert set(table.index) == {
        "methylgpt_d64",
        "methylgpt_d128",
        "methylgpt_d256",
        "epigept_hg38",
        "epigept_hg38_pretrained",
        "epigept_hg19",
    }
    assert set(table["model"]) == {"MethylGPT", "EpiGePT"}
    assert table["source"].str.startswith("https://").all()
    assert table["doi"].str.startswith("10.").all()
    assert (table[["files", "size", "parameters", "genome", "licence", "how_to_obtain"]] != "").all().all()
    methylgpt = table[table["model"] == "MethylGPT"]
    assert methylgpt["source"].str.startswith("https://drive.google.com/drive/folders/").all()
    assert (methylgpt["files"] == "vocab.json, args.json, *.pt").all()
    assert methylgpt.loc["methylgpt_d64", "source"].endswith("1kWdmkkVQpU17uzUC6-wpNR_4UEdxGx6k")
    epigept = table[table["model"] == "EpiGePT"]
    assert (epigept["source"] == "https://health.tsinghua.edu.cn/epigept/download.php").all()
    assert epigept.loc["epigept_hg19", "genome"] == "hg19"
    assert not table["cached"].any()
    assert table.loc["epigept_hg38", "folder"] == str(cache / "epigept_hg38")


@pytest.mark.parametrize(("cls", "name"), [(MethylGPT, "methylgpt_d64"), (EpiGePT, "epigept_hg38")])
def test_offline_not_cached_raises_the_guiding_error(cache, cls, name):
    entry = _registry.REGISTRY[name]
    with pytest.raises(FileNotFoundError) as err:
        cls.from_pretrained(name)
    message = str(err.value)
    assert entry.url in message  # where to get it
    assert all(f in message for f in entry.files)  # what to get
    assert str(cache / name) in message  # the exact folder to put it in
    assert ("download=True" in message) == (cls is MethylGPT)  # EpiGePT's page has no direct link to follow
    assert not (cache / name).exists()  # nothing was created or downloaded


def test_unknown_name_lists_the_registered_names(cache):
    with pytest.raises(FileNotFoundError, match="methylgpt_d64, methylgpt_d128, methylgpt_d256"):
        MethylGPT.from_pretrained("methylgpt_huge")
    with pytest.raises(FileNotFoundError, match="epigept_hg38, epigept_hg38_pretrained, epigept_hg19"):
        EpiGePT.from_pretrained("epigept_mouse")
    with pytest.raises(ValueError, match="EpiGePT checkpoint; load it with `ef.models.EpiGePT.from_pretrained`"):
        MethylGPT.from_pretrained("epigept_hg38")
    with pytest.raises(KeyError, match="registered names: methylgpt_d64"):
        ef.models.fetch("nothing")


def test_methylgpt_cached_copy_loads_by_name_and_is_verified(cache, tmp_path):
    folder = cache / "methylgpt_d64"
    model = _methylgpt(folder)
    assert ef.models.list_pretrained().loc["methylgpt_d64", "cached"]
    by_name = MethylGPT.from_pretrained("methylgpt_d64")
    by_path = MethylGPT.from_pretrained(folder)
    assert _same_weights(by_name, model) and _same_weights(by_name, by_path)
    assert by_name.config == by_path.config and by_name.n_heads == 2
    assert by_name.checkpoint["name"] == "methylgpt_d64" and "name" not in by_path.checkpoint
    assert by_name.checkpoint["sha256"] == by_path.checkpoint["sha256"]

    sums = json.loads((folder / _registry.SUMS).read_text())
    assert sums["name"] == "methylgpt_d64"
    assert sums["sha256"] == {p: sha256(folder / p) for p in ("args.json", "tiny-best_model_epoch10.pt", "vocab.json")}
    assert not list(folder.glob(".*"))  # the atomic write left no temporary file
    MethylGPT.from_pretrained("methylgpt_d64")  # unchanged files: verified and loaded again

    weights = folder / "tiny-best_model_epoch10.pt"
    old = sha256(weights)
    _methylgpt(tmp_path / "other", seed=1)
    weights.write_bytes((tmp_path / "other" / weights.name).read_bytes())
    new = sha256(weights)
    with pytest.raises(ValueError, match="changed since its first load") as err:
        MethylGPT.from_pretrained("methylgpt_d64")
    assert old in str(err.value) and new in str(err.value)
    assert _same_weights(MethylGPT.from_pretrained(weights.parent), MethylGPT.from_pretrained(tmp_path / "other"))
    assert json.loads((folder / _registry.SUMS).read_text()) == sums  # the record is not overwritten


@needs_safe_loader
def test_epigept_cached_copy_loads_by_name_and_is_verified(cache):
    config = small_config()
    folder = cache / "epigept_hg38"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = perturb(PublishedEpiGePT(config), seed=0).eval()
    save_lightning_checkpoint(net, folder / "model.ckpt")  # the authors' Lightning checkpoint
    by_name = EpiGePT.from_pretrained("epigept_hg38", n_heads=config.n_heads)
    by_path = EpiGePT.from_pretrained(folder / "model.ckpt", n_heads=config.n_heads)
    assert _same_weights(by_name, by_path) and by_name.config == by_path.config
    assert by_name.checkpoint["name"] == "epigept_hg38"
    assert by_name.checkpoint["sha256"] == by_path.checkpoint["sha256"] == sha256(folder / "model.ckpt")
    sums = json.loads((folder / _registry.SUMS).read_text())["sha256"]
    assert sums == {"model.ckpt": sha256(folder / "model.ckpt")}

    with open(folder / "model.ckpt", "ab") as handle:  # a truncated / appended download
        handle.write(b"\0")
    with pytest.raises(ValueError, match=sums["model.ckpt"]) as err:
        EpiGePT.from_pretrained("epigept_hg38", n_heads=config.n_heads)
    assert sha256(folder / "model.ckpt") in str(err.value)


def test_a_path_is_never_taken_for_a_name(cache, tmp_path, monkeypatch):
    """A local folder called like a registered checkpoint loads from where it is, as before."""
    model = _methylgpt(tmp_path / "methylgpt_d64")
    monkeypatch.chdir(tmp_path)
    loaded = MethylGPT.from_pretrained("methylgpt_d64")
    assert _same_weights(loaded, model) and "name" not in loaded.checkpoint
    assert not (cache / "methylgpt_d64").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MethylGPT.from_pretrained(tmp_path / "missing" / "folder")


def test_download_places_the_files_then_loads(cache, tmp_path, monkeypatch):
    calls = []

    def fake_gdown(folder_id, dest):  # what gdown.download_folder does: the Drive folder under `dest`
        calls.append(folder_id)
        _methylgpt(dest / "tiny")

    monkeypatch.setattr(_registry, "_download_gdrive_folder", fake_gdown)
    model = load_pretrained(MethylGPT, "methylgpt_d64", download=True)
    assert calls == ["1kWdmkkVQpU17uzUC6-wpNR_4UEdxGx6k"]
    folder = cache / "methylgpt_d64"
    assert sorted(p.name for p in folder.iterdir()) == [
        "args.json",
        "sha256.json",
        "tiny-best_model_epoch10.pt",
        "vocab.json",
    ]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # staging folder removed
    assert _same_weights(model, _methylgpt(tmp_path / "expected"))
    assert ef.models.fetch("methylgpt_d64") == folder and calls == [calls[0]]  # cached: no second download
    assert MethylGPT.from_pretrained("methylgpt_d64").checkpoint["name"] == "methylgpt_d64"


def test_download_of_a_plain_url_goes_through_pooch_and_a_bad_download_places_nothing(cache, monkeypatch):
    entry = _registry.Pretrained(
        name="test_url",
        model="EpiGePT",
        publication="p",
        doi="10.0/x",
        page="https://example.org/page",
        files=("model.ckpt",),
        size="not stated",
        parameters="not stated",
        genome="hg38",
        licence="none",
        how_to_obtain="a test",
        download="url",
        locator="https://example.org/model.ckpt",
    )
    monkeypatch.setitem(_registry.REGISTRY, "test_url", entry)
    seen = []

    def fake_pooch(url, dest, fname, known_hash):
        seen.append((url, fname))
        (dest / "wrong_name.bin").write_bytes(b"x")

    monkeypatch.setattr(_registry, "_download_url", fake_pooch)
    with pytest.raises(FileNotFoundError, match="holds wrong_name.bin, not model.ckpt; nothing was placed"):
        ef.models.fetch("test_url")
    assert seen == [("https://example.org/model.ckpt", "model.ckpt")]
    assert not (cache / "test_url").exists()

    monkeypatch.setattr(_registry, "_download_url", lambda url, dest, fname, known_hash: (dest / fname).write_text("w"))
    assert (ef.models.fetch("test_url") / "model.ckpt").read_text() == "w"


def test_manual_checkpoints_and_missing_gdown_say_what_to_do(cache, monkeypatch):
    with pytest.raises(
        FileNotFoundError,
        match=r"Download checkpoint/pretrain_model\.ckpt from https://health.tsinghua.edu.cn/epigept/download\.php by hand",
    ) as err:
        ef.models.fetch("epigept_hg19")
    assert str(cache / "epigept_hg19") in str(err.value) and "pretrain_model.ckpt" in str(err.value)
    monkeypatch.setitem(sys.modules, "gdown", None)
    with pytest.raises(ImportError, match="pip install gdown"):
        ef.models.fetch("methylgpt_d128")
