"""A new user's first hour: random weights are called out once, and nothing they cannot act on is printed."""

from __future__ import annotations

import logging
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

matplotlib.use("agg")
import matplotlib.pyplot as plt

import epiformer as ef
from epiformer import Key
from epiformer._utils import progress_bar
from epiformer.models import EpiGePT, EpiGePTConfig, MethylGPT, MethylGPTVocab

RANDOM = "never loaded from a checkpoint nor trained: outputs are from random initialisation"
#: What Lightning and tqdm print that a user cannot act on.
NOISE = (
    "Tip:",
    "GPU available",
    "TPU available",
    "HPU available",
    "LitLogger",
    "litlogger",
    "litmodels",
    "set_float32_matmul_precision",
    "IProgress not found",
    "LeafSpec",
)


@pytest.fixture
def cohort() -> AnnData:
    return ef.datasets.synthetic_methylome(24, 20, random_state=0)


def _random_model(cohort: AnnData) -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(list(cohort.var_names)), d_model=16, n_layers=1, n_heads=2)


def _random_warnings(call) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in record if RANDOM in str(w.message)]


def _embed_and_impute(cohort: AnnData, model: MethylGPT) -> None:
    ef.tl.embed(cohort, model, progress=False)
    ef.tl.impute(cohort, model, progress=False)


def test_random_methylgpt_warns_once_per_model(cohort):
    model = _random_model(cohort)
    assert model.weights_source == "random"
    messages = _random_warnings(lambda: _embed_and_impute(cohort, model))
    assert len(messages) == 1 and "this MethylGPT" in messages[0]
    assert cohort.uns[Key.uns.methylgpt]["params"]["weights"] == "random"
    assert cohort.uns[Key.uns.imputed]["params"]["weights"] == "random"
    assert not _random_warnings(lambda: ef.tl.embed(cohort, model, progress=False))  # the same object: said once
    assert len(_random_warnings(lambda: ef.tl.embed(cohort, _random_model(cohort), progress=False))) == 1


def test_loaded_methylgpt_does_not_warn(cohort, tmp_path):
    _random_model(cohort).save_pretrained(tmp_path / "model")
    loaded = MethylGPT.from_pretrained(tmp_path / "model")
    assert loaded.weights_source == "checkpoint"
    assert not _random_warnings(lambda: _embed_and_impute(cohort, loaded))
    assert cohort.uns[Key.uns.methylgpt]["params"]["weights"] == "checkpoint"
    by_hand = _random_model(cohort)
    by_hand.load_state_dict(loaded.state_dict())  # a state dict loaded with plain torch counts too
    assert by_hand.weights_source == "checkpoint"


def test_trained_methylgpt_does_not_warn(cohort):
    model = ef.tl.pretrain(cohort, d_model=16, n_layers=1, n_heads=2, max_epochs=1, progress=False, random_state=0)
    assert model.weights_source == "trained"
    assert not _random_warnings(lambda: _embed_and_impute(cohort, model))
    assert cohort.uns[Key.uns.methylgpt]["params"]["weights"] == "trained"


def _epigept_inputs() -> tuple[EpiGePT, AnnData]:
    tfs = [f"T{i}" for i in range(7)]
    torch.manual_seed(0)
    config = EpiGePTConfig(
        conv_channels=(8, 8, 16, 16, 24),
        n_tfs=len(tfs),
        tf_dim=8,
        n_layers=1,
        n_heads=4,
        ffn_dim=48,
        n_bins=64,
        max_positions=64,
        head_hidden=16,
        variant="custom",
        tf_names=tuple(tfs),
    )
    model = EpiGePT(config).eval()
    contexts = AnnData(
        X=np.random.default_rng(0).uniform(0, 3, (2, len(tfs))).astype(np.float32), var=pd.DataFrame(index=tfs)
    )
    return model, contexts


def _predict_epigenome(model: EpiGePT, contexts: AnnData) -> AnnData:
    motifs = {"T0": [np.full((6, 4), 0.25)]}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no motif")  # only T0 has one
        return ef.tl.predict_epigenome(
            contexts,
            model,
            regions="22:20300001-20308192",
            fasta=ef.datasets.hg19_chr22_segment(),
            motifs=motifs,
            progress=False,
            device="cpu",
        )


def test_random_epigept_warns_once_and_tracks_say_so():
    model, contexts = _epigept_inputs()
    outputs = []
    messages = _random_warnings(lambda: outputs.extend(_predict_epigenome(model, contexts) for _ in range(2)))
    assert len(messages) == 1 and "this EpiGePT" in messages[0]
    pred = outputs[0]
    assert pred.uns[Key.uns.epigept]["params"]["weights"] == "random"
    fig = ef.pl.tracks(pred, signals=["DNase"])
    assert "random weights" in fig.axes[0].get_title()
    pred.uns[Key.uns.epigept]["params"]["weights"] = "checkpoint"
    assert "random" not in ef.pl.tracks(pred, signals=["DNase"]).axes[0].get_title()
    plt.close("all")


def test_pretrain_prints_nothing_a_user_cannot_act_on(cohort, tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)
    before = logging.getLogger("lightning.pytorch").level
    ef.tl.pretrain(
        cohort, d_model=16, n_layers=1, n_heads=2, max_epochs=1, progress=False, random_state=0, ckpt_dir=tmp_path
    )
    captured = capfd.readouterr()
    printed = captured.out + captured.err + caplog.text
    assert not [s for s in NOISE if s in printed], printed
    assert logging.getLogger("lightning.pytorch").level == before  # the silencing is scoped to the fit


def test_progress_bar_without_ipywidgets_is_plain_text(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else find_spec(name))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        bar = progress_bar(total=3, disable=True)
    assert type(bar).__module__ == "tqdm.std"
    assert not [w for w in record if "IProgress" in str(w.message)]
