"""`ef.tl.finetune`: heads, scaling on the training split, two learning rates, early stopping, save / load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab
from epiformer.models.methylgpt._finetuning import FinetuneModule
from epiformer.models.methylgpt._heads import FinetuneNet, ResNet1D


@pytest.fixture(scope="module")
def cohort():
    """240 samples x 64 CpGs, 30 % of them age-linked (known slopes), three tissues; split 70 / 10 / 20."""
    adata = ef.datasets.synthetic_methylome(240, 64, frac_age=0.3, noise=0.2, missing_rate=0.02, random_state=0)
    ef.pp.split_samples(adata, random_state=0)
    return adata


def _model(probes) -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(probes), d_model=16, n_layers=2, n_heads=2, dropout=0.0)


def _medae(adata, key):
    test = (adata.obs["split"] == "test").to_numpy()
    return float(np.median(np.abs(adata.obs[key].to_numpy()[test] - adata.obs["age"].to_numpy()[test])))


def test_age_mlp_beats_the_mean_and_sits_beside_the_baseline(cohort):
    adata = cohort.copy()
    model = _model(list(adata.var_names))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predictor = ef.tl.finetune(
        adata,
        model,
        target="age",
        head="mlp",
        head_epochs=0,  # from random weights, the backbone's features are worth nothing to a head alone
        max_epochs=40,
        lr_backbone=1e-3,
        lr_head=3e-3,
        early_stopping_patience=None,  # a small model from scratch plateaus for ~15 epochs before it learns
        progress=False,
    )
    for k, v in model.state_dict().items():  # the caller's model is not trained in place
        torch.testing.assert_close(v, before[k])
    train = (adata.obs["split"] == "train").to_numpy()
    ages = adata.obs["age"].to_numpy()
    assert predictor.scale == (ages[train].min(), ages[train].max())  # min-max on the training split only
    assert {"epoch", "train_loss", "val_loss"} <= set(predictor.history.columns)
    ef.tl.predict(adata, predictor, key_added="age_methylgpt")
    baseline = ef.tl.fit_baseline(adata, target="age")
    ef.tl.predict(adata, baseline, key_added="age_elasticnet")
    test = (adata.obs["split"] == "test").to_numpy()
    mean_medae = float(np.median(np.abs(ages[test] - ages[train].mean())))
    ours, elasticnet = _medae(adata, "age_methylgpt"), _medae(adata, "age_elasticnet")
    print(f"test MedAE: fine-tuned MethylGPT {ours:.2f}, ElasticNet {elasticnet:.2f}, training mean {mean_medae:.2f}")
    assert ours < 0.5 * mean_medae
    scores = ef.tl.evaluate(adata, truth="age", pred=["age_methylgpt", "age_elasticnet"])
    assert list(scores.index) == ["age_methylgpt", "age_elasticnet"] and "medae" in scores.columns
    assert adata.uns["age_methylgpt"]["params"]["head"] == "mlp"


@pytest.mark.parametrize("head", ["linear", "resnet1d"])
def test_other_heads_train_and_predict(cohort, head):
    adata = cohort.copy()
    predictor = ef.tl.finetune(
        adata, _model(list(adata.var_names)), target="age", head=head, max_epochs=2, progress=False
    )
    values = predictor.predict_values(adata)
    assert values.shape == (adata.n_obs,) and np.isfinite(values).all()
    lo, hi = predictor.scale
    assert ((values >= lo) & (values <= hi)).all()  # the published sigmoid keeps predictions in the training range
    joint = predictor.history["stage"] == "backbone and head"
    assert joint.sum() == 2 and predictor.history["epoch"].tolist() == list(range(len(predictor.history)))


def test_classification_probabilities_and_save_load(cohort, tmp_path):
    adata = cohort.copy()
    predictor = ef.tl.finetune(adata, _model(list(adata.var_names)), target="tissue", max_epochs=3, progress=False)
    assert predictor.task == "classification" and predictor.classes == sorted(adata.obs["tissue"].unique())
    ef.tl.predict(adata, predictor)
    proba = adata.obsm["tissue_pred_proba"]
    assert list(proba.columns) == predictor.classes
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert adata.obs["tissue_pred"].dtype == "category"
    predictor.save(tmp_path / "tissue")
    with pytest.raises(FileExistsError):
        predictor.save(tmp_path / "tissue")
    loaded = ef.models.MethylGPTPredictor.load(tmp_path / "tissue")
    np.testing.assert_allclose(loaded.predict_values(adata), predictor.predict_values(adata), atol=1e-6)
    assert loaded.history.equals(predictor.history) and loaded.features == predictor.features
    assert loaded.net.head_name == predictor.net.head_name == "resnet1d"  # the default: the published head
    assert not any(p.suffix in (".pt", ".pkl", ".ckpt") for p in (tmp_path / "tissue").rglob("*"))


def test_two_learning_rates_and_frozen_backbone(cohort):
    model = _model(list(cohort.var_names))
    net = FinetuneNet(model, head="mlp", n_out=1, regression=True)
    module = FinetuneModule(
        net, torch.arange(3, 67), lr_backbone=1e-4, lr_head=1e-3, weight_decay=0.0, cpgs_per_step=None, seed=0
    )
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [g["initial_lr"] for g in groups] == [1e-4, 1e-3]  # both warm up from 1 % of their rate
    assert [g["lr"] for g in groups] == pytest.approx([1e-6, 1e-5])
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in net.parameters())
    adata = cohort.copy()
    predictor = ef.tl.finetune(adata, model, target="age", freeze_backbone=True, max_epochs=1, progress=False)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(predictor.net.backbone.state_dict()[k], v)
    assert set(predictor.history["stage"]) == {"head"}  # the frozen backbone trains in the head stage alone


def test_head_stage_standardised_features_and_cpg_subsets(cohort, monkeypatch, tmp_path):
    """The head first trains alone on standardised cached features, then with the backbone on CpG subsets."""
    seen = []
    original = FinetuneNet.forward

    def spy(self, betas, cpg_ids):
        seen.append((self.training, betas.shape[1], len(cpg_ids)))
        return original(self, betas, cpg_ids)

    monkeypatch.setattr(FinetuneNet, "forward", spy)
    adata = cohort.copy()
    model = _model(list(adata.var_names))
    predictor = ef.tl.finetune(
        adata, model, target="tissue", head="mlp", head_epochs=5, max_epochs=2, cpgs_per_step=12, progress=False
    )
    assert predictor.history["stage"].tolist()[:5] == ["head"] * 5
    assert (predictor.history["stage"] == "backbone and head").sum() == 2
    assert {n for training, n, _ in seen if training} == {12} and all(n == m for _, n, m in seen)
    assert {n for training, n, _ in seen if not training} == {64}  # validation reads every CpG
    scaler, mlp = predictor.net.head
    assert mlp[0].in_features == 32  # <cls> and the CpG mean side by side
    train = torch.from_numpy(adata.X[(adata.obs["split"] == "train").to_numpy()])
    ids = torch.as_tensor([model.vocab[p] for p in predictor.features])
    with torch.no_grad():  # set from the pretrained backbone's features of the training samples
        net = FinetuneNet(model.eval(), head="mlp", n_out=3, regression=False, readout="cls+mean")
        expected = net.features(train, ids)
    torch.testing.assert_close(scaler.mean, expected.mean(dim=0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scaler.std, expected.std(dim=0), rtol=1e-4, atol=1e-5)
    predictor.save(tmp_path / "mlp")
    loaded = ef.models.MethylGPTPredictor.load(tmp_path / "mlp")
    assert (loaded.net.readout, loaded.net.standardize) == ("cls+mean", True)
    np.testing.assert_allclose(loaded.predict_values(adata), predictor.predict_values(adata), atol=1e-6)
    for bad in ({"readout": "max"}, {"head_epochs": -1}, {"cpgs_per_step": 0}):
        with pytest.raises(ValueError, match="readout|head_epochs"):
            ef.tl.finetune(adata, model, target="tissue", progress=False, **bad)


def test_published_resnet1d_shape():
    head = ResNet1D(64, 1)
    assert head.stem.weight.shape == (32, 64, 3) and head.stem.bias is None
    assert [b.body[2].stride[0] for b in head.blocks] == [2, 1, 2, 1, 2, 1]
    assert head(torch.randn(3, 64, 100)).shape == (3, 1)


def test_bad_targets(cohort):
    adata = cohort.copy()
    model = _model(list(adata.var_names))
    adata.obs.loc[adata.obs_names[:5], "age"] = np.nan
    with pytest.warns(UserWarning, match="5 of 240 samples have no 'age' value"):
        ef.tl.finetune(adata, model, target="age", max_epochs=1, progress=False)
    adata.obs["constant"] = 3.0
    with pytest.raises(ValueError, match="constant"):
        ef.tl.finetune(adata, model, target="constant", progress=False)
    adata.obs["one_class"] = "healthy"
    with pytest.raises(ValueError, match="single class"):
        ef.tl.finetune(adata, model, target="one_class", progress=False)
    with pytest.raises(KeyError, match="not a column"):
        ef.tl.finetune(adata, model, target="height", progress=False)
    with pytest.raises(ValueError, match="`head`"):
        ef.tl.finetune(adata, model, target="age", head="transformer", progress=False)
    few = _model([*adata.var_names[:10], *[f"cg9{i:07d}" for i in range(30)]])
    with pytest.warns(UserWarning, match="Only 10 of the model's 40 CpGs"):
        ef.tl.finetune(adata, few, target="age", max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="None of the model's"):
        ef.tl.finetune(adata, _model(["cg99999999"]), target="age", progress=False)
    assert "age_pred" not in adata.obs


def test_predictor_saved_by_the_earlier_release_still_loads(cohort, tmp_path):
    import json

    from safetensors.torch import save_file

    adata = cohort.copy()
    predictor = ef.tl.finetune(
        adata,
        _model(list(adata.var_names)),
        target="age",
        head="mlp",
        readout="cls",
        standardize=False,
        max_epochs=1,
        progress=False,
    )
    old = tmp_path / "old"
    predictor.net.backbone.save_pretrained(old / "backbone")
    save_file({k: v.contiguous() for k, v in predictor.net.head.state_dict().items()}, old / "head.safetensors")
    config = {"target": "age", "task": "regression", "classes": None, "features": predictor.features}
    config |= {
        "scale": list(predictor.scale),
        "head": "mlp",
        "missing": "mask",
        "history": {},
        "epiformer_version": "0.1.0",
    }
    (old / "predictor.json").write_text(json.dumps(config))
    with pytest.warns(FutureWarning, match="earlier predictor layout"):
        loaded = ef.models.MethylGPTPredictor.load(old)
    np.testing.assert_allclose(loaded.predict_values(adata), predictor.predict_values(adata), atol=1e-6)


def test_head_stage_too_large_to_cache_is_skipped_with_a_warning(cohort, monkeypatch):
    from epiformer.models.methylgpt import _finetuning

    monkeypatch.setattr(_finetuning, "MAX_CACHE_BYTES", 1024)
    adata = cohort.copy()
    with pytest.warns(UserWarning, match=r"cache 0\.0 GiB .* x 1024 values\).*skipped"):
        predictor = ef.tl.finetune(adata, _model(list(adata.var_names)), target="age", max_epochs=1, progress=False)
    assert set(predictor.history["stage"]) == {"backbone and head"}
