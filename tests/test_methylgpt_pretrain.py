"""`ef.tl.pretrain`: masked value modelling, fresh masks, backed streaming, exact resume, DDP, imputation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab
from epiformer.models.methylgpt import _engine as model_inputs
from epiformer.models.methylgpt import column_sd, most_variable, prepare_inputs
from epiformer.models.methylgpt._pretraining import RUN_OPTIONS_KEY, BetaRows, PretrainModule, sd_weights

SMALL = {"d_model": 16, "n_layers": 2, "n_heads": 2, "batch_size": 16, "progress": False}


@pytest.fixture(scope="module")
def cohort():
    """80 samples x 48 CpGs, 5 % missing."""
    return ef.datasets.synthetic_methylome(80, 48, missing_rate=0.05, random_state=1)


def _losses(model):
    return model.history[["train_loss", "val_loss"]].to_numpy()


def test_loss_decreases_and_history_is_recorded(cohort):
    adata = cohort.copy()
    model = ef.tl.pretrain(adata, max_epochs=6, lr=3e-3, **SMALL)
    assert isinstance(model, MethylGPT) and not model.training and model.d_model == 16
    assert model.history["epoch"].tolist() == list(range(6))
    losses = _losses(model)
    assert losses[-1, 0] < 0.7 * losses[0, 0] and losses[-1, 1] < losses[0, 1]
    info = adata.uns["methylgpt_pretrain"]
    assert info["params"]["n_train"] == 72 and info["params"]["n_val"] == 8 and info["params"]["mask_ratio"] == 0.3
    assert list(info["history"].columns) == ["epoch", "train_loss", "val_loss", "lr"]
    assert list(model.vocab.probes) == sorted(adata.var_names)


def _module(**options):
    """A PretrainModule over 400 CpGs without data (for its masks and optimiser)."""
    vocab = MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(400)])
    settings = {"mask_ratio": 0.3, "lr": 1e-3, "lr_gamma": 0.9, "batch_size": 4, "num_workers": 0, "seed": 0}
    settings |= {"lr_schedule": "cosine", "lr_warmup": 0.05}
    settings |= {"cpgs_per_step": None, "adam_eps": 1e-8, "warmup_columns": None, "warmup_epochs": 0, "mvc_weight": 1.0}
    settings |= {"cpg_weights": None, "run_options": {}}
    settings |= options
    return PretrainModule(
        MethylGPT(vocab, d_model=8, n_layers=1, n_heads=2), torch.arange(3, 403), train=None, val=None, **settings
    )


def test_optimiser_settings_reach_adam_and_the_schedule():
    optimizers = _module(lr=2e-3, lr_schedule="step", lr_gamma=0.97, adam_eps=1e-6).configure_optimizers()
    assert optimizers["optimizer"].defaults["eps"] == 1e-6 and optimizers["optimizer"].defaults["lr"] == 2e-3
    assert optimizers["lr_scheduler"]["scheduler"].gamma == 0.97
    assert optimizers["lr_scheduler"]["interval"] == "epoch"


def test_cosine_schedule_warms_up_then_decays_to_the_end_of_the_run(cohort):
    """Per step: from 1 % of `lr` up to `lr` over the warm-up share, then a cosine down to 1 % at the last step."""
    model = ef.tl.pretrain(cohort.copy(), max_epochs=10, lr=2e-3, lr_warmup=0.3, **SMALL)
    lr = model.history["lr"].to_numpy()  # 5 steps per epoch, 50 in all: the peak at step 15 (epoch 2)
    assert lr.argmax() == 2 and lr.max() == pytest.approx(2e-3, rel=0.05)
    assert (np.diff(lr[2:]) < 0).all() and lr[-1] == pytest.approx(2e-5)
    assert np.all(lr[:2] < lr[2])
    published = ef.tl.pretrain(cohort.copy(), max_epochs=3, lr=2e-3, lr_schedule="step", lr_gamma=0.5, **SMALL)
    np.testing.assert_allclose(published.history["lr"], [1e-3, 5e-4, 2.5e-4])
    for bad in ({"lr_schedule": "linear"}, {"lr_warmup": 1.0}, {"max_epochs": 0}):
        with pytest.raises(ValueError, match="lr_schedule|lr_warmup|max_epochs"):
            ef.tl.pretrain(cohort.copy(), **bad, **SMALL)


def test_without_a_length_or_budget_a_run_has_the_default_epochs(cohort, monkeypatch):
    from epiformer.models.methylgpt import _pretraining

    assert _pretraining.default_epochs(1_000) == 400 and _pretraining.default_epochs(20_000) == 400
    assert _pretraining.default_epochs(160_000) == 50 and _pretraining.default_epochs(10**8) == 1
    monkeypatch.setattr(_pretraining, "DEFAULT_SAMPLE_PASSES", 2 * 72)  # 72 training samples: 2 epochs
    adata = cohort.copy()
    model = ef.tl.pretrain(adata, **SMALL)
    params = adata.uns["methylgpt_pretrain"]["params"]
    assert len(model.history) == 2 and params["max_epochs"] == 2 and params["n_train"] == 72
    assert params["cpgs_per_step"] == 200 and params["lr"] == 3e-3  # the defaults (all 48 CpGs here)
    assert params["cpg_sampling"] == "sd" and params["mvc_weight"] == 0.0


def test_a_time_budget_ends_the_schedule_with_it(cohort):
    """Without `max_epochs`, `max_time` ends the run and the learning rate has decayed near its floor by then."""
    model = ef.tl.pretrain(cohort.copy(), max_time=4, lr=1e-3, **SMALL)
    lr = model.history["lr"].to_numpy()
    assert len(lr) >= 4  # epochs of 5 steps take well under a second each
    assert lr.max() > 0.5e-3  # past the warm-up, near the peak: the time share moved the schedule
    assert lr[-1] < 0.1 * lr.max() and (np.diff(lr[lr.argmax() :]) <= 0).all()


def test_masks_are_fresh_observed_only_and_reproducible():
    module = _module()
    observed = torch.rand(4, 400, generator=torch.Generator().manual_seed(0)) > 0.2
    masks = [module.draw_mask(observed, torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert not torch.equal(masks[0], masks[1])  # a new mask per batch, even with the same missingness
    assert not (masks[0] & ~observed).any()  # only observed CpGs are masked
    ratio = masks[0].sum() / observed.sum()
    assert 0.27 < float(ratio) < 0.33
    again = module.draw_mask(observed, torch.Generator().manual_seed(1))
    assert torch.equal(again, masks[0])


def test_mvc_weight_scales_the_mvc_loss():
    betas = torch.rand(4, 400, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(4, 400, generator=torch.Generator().manual_seed(1)) < 0.3
    module = _module()
    module.model.eval()
    ids, values, kpm = module.model.tokenize(betas.masked_fill(mask, -1.0), cpg_ids=module.cpg_ids)
    out = module.model(ids, values, key_padding_mask=kpm, mvc=True)
    mlm, mvc = (torch.nn.functional.mse_loss(out[k][:, 1:][mask], betas[mask]) for k in ("mlm_output", "mvc_output"))
    for weight, expected in ((1.0, mlm + mvc), (0.25, mlm + 0.25 * mvc), (0.0, mlm)):
        module.mvc_weight = weight
        torch.testing.assert_close(module.masked_loss(betas, mask, module.cpg_ids), expected)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_unused_heads_are_frozen_while_training(weight):
    """The classification head, and the MVC head at weight 0, take no gradient (DDP would find them unused)."""
    module = _module(mvc_weight=weight)
    module.setup("fit")
    model = module.model
    assert not any(p.requires_grad for p in model.cls_decoder.parameters())
    assert all(p.requires_grad != (weight == 0) for p in model.mvc_decoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    module.teardown("fit")
    assert all(p.requires_grad for p in model.parameters())


def test_mvc_weight_zero_leaves_the_mvc_head_untrained(cohort):
    adata = cohort.copy()
    torch.manual_seed(0)
    model = MethylGPT(MethylGPTVocab.from_probes(adata.var_names), d_model=16, n_layers=1, n_heads=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    options = {k: v for k, v in SMALL.items() if k not in ("d_model", "n_layers", "n_heads")}
    ef.tl.pretrain(adata, model=model, mvc_weight=0.0, max_epochs=2, **options)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith(("mvc_decoder", "cls_decoder")))
    assert not torch.equal(after["decoder.fc.0.weight"], before["decoder.fc.0.weight"])
    assert all(p.requires_grad for p in model.parameters())  # frozen only while training
    assert adata.uns["methylgpt_pretrain"]["params"]["mvc_weight"] == 0.0
    with pytest.raises(ValueError, match="mvc_weight"):
        ef.tl.pretrain(cohort.copy(), mvc_weight=-1.0, **SMALL)


def test_cpgs_per_step_trains_on_random_subsets(cohort, monkeypatch):
    """Each training batch covers a fresh random subset of CpGs; validation covers them all."""
    seen = []
    original = PretrainModule.masked_loss

    def spy(self, betas, mask, cpg_ids):
        seen.append((self.training, tuple(cpg_ids.tolist())))
        assert betas.shape[1] == len(cpg_ids)
        return original(self, betas, mask, cpg_ids)

    monkeypatch.setattr(PretrainModule, "masked_loss", spy)
    adata = cohort.copy()
    ef.tl.pretrain(adata, max_epochs=2, cpgs_per_step=12, **SMALL)
    train = [ids for training, ids in seen if training]
    assert {len(ids) for ids in train} == {12} and len(set(train)) == len(train)  # a new subset every step
    assert all(list(ids) == sorted(ids) for ids in train)
    assert {len(ids) for training, ids in seen if not training} == {48}
    assert adata.uns["methylgpt_pretrain"]["params"]["cpgs_per_step"] == 12
    with pytest.raises(ValueError, match="cpgs_per_step"):
        ef.tl.pretrain(cohort.copy(), cpgs_per_step=0, **SMALL)


def test_warmup_trains_on_the_most_variable_cpgs_first(cohort, monkeypatch):
    """The first `warmup_epochs` epochs see only the `warmup_cpgs` most variable CpGs, then random subsets."""
    seen = []
    original = PretrainModule.masked_loss

    def spy(self, betas, mask, cpg_ids):
        seen.append((self.training, self.current_epoch, tuple(cpg_ids.tolist())))
        return original(self, betas, mask, cpg_ids)

    monkeypatch.setattr(PretrainModule, "masked_loss", spy)
    adata = cohort.copy()
    variable = [3, 17, 30, 41]
    adata.X[:, variable] = (np.arange(adata.n_obs) % 2)[:, None]  # 0/1: the largest possible spread
    model = ef.tl.pretrain(adata, max_epochs=3, warmup_cpgs=4, warmup_epochs=2, cpgs_per_step=12, **SMALL)
    expected = tuple(model.vocab[name] for name in adata.var_names[variable])
    train = [(epoch, ids) for training, epoch, ids in seen if training]
    assert {ids for epoch, ids in train if epoch < 2} == {expected}
    assert {len(ids) for epoch, ids in train if epoch == 2} == {12}
    assert {len(ids) for training, _, ids in seen if not training} == {48}  # validation covers every CpG
    params = adata.uns["methylgpt_pretrain"]["params"]
    assert params["warmup_cpgs"] == 4 and params["warmup_epochs"] == 2
    for bad in ({"warmup_cpgs": 0}, {"warmup_cpgs": 4, "warmup_epochs": 0}):
        with pytest.raises(ValueError, match="warmup"):
            ef.tl.pretrain(cohort.copy(), **bad, **SMALL)


def test_sd_weights_follow_the_sd_above_a_floor():
    weights = sd_weights(np.array([0.0, 0.1, 0.3, np.nan, 0.4]))  # mean sd 0.16 (NaN as 0): floor 0.016
    np.testing.assert_allclose(weights.numpy(), [0.016, 0.1, 0.3, 0.016, 0.4])
    np.testing.assert_allclose(sd_weights(np.zeros(4)).numpy(), 1.0)  # nothing varies: uniform


def test_cpg_subsets_drawn_by_sd_favour_the_variable_cpgs(cohort, monkeypatch):
    """With ``cpg_sampling="sd"`` the variable CpGs are drawn more often than the others, constant ones rarely."""
    seen = []
    original = PretrainModule.masked_loss

    def spy(self, betas, mask, cpg_ids):
        if self.training:
            seen.extend(cpg_ids.tolist())
        return original(self, betas, mask, cpg_ids)

    monkeypatch.setattr(PretrainModule, "masked_loss", spy)
    adata = cohort.copy()
    adata.X[:, :8] = (np.arange(adata.n_obs) % 2)[:, None]  # sd 0.5, the largest possible
    adata.X[:, 8:16] = 0.3  # constant
    counts = {}
    for sampling in ("sd", "uniform"):
        seen.clear()
        ef.tl.pretrain(adata.copy(), max_epochs=20, cpgs_per_step=12, cpg_sampling=sampling, **SMALL)
        model_ids = [MethylGPTVocab.from_probes(sorted(adata.var_names))[name] for name in adata.var_names]
        drawn = pd.Series(seen).value_counts().reindex(model_ids, fill_value=0).to_numpy()
        counts[sampling] = drawn / drawn.sum()
    # 12 of 48 per step: a uniform draw gives each CpG 1/48; by sd, the spread CpGs several times more
    np.testing.assert_allclose(counts["uniform"], 1 / 48, atol=0.01)
    assert counts["uniform"][:8].mean() < 1.3 / 48 and counts["sd"][:8].mean() > 2.5 / 48  # the draw, not the data
    spread, constant, others = (counts["sd"][cols].mean() for cols in (slice(0, 8), slice(8, 16), slice(16, None)))
    assert spread > 1.5 * others > 1.5 * constant > 0  # the floor: the constant CpGs are still drawn
    with pytest.raises(ValueError, match="`cpg_sampling` must be 'sd' or 'uniform'"):
        ef.tl.pretrain(cohort.copy(), cpg_sampling="variance", **SMALL)


def test_column_sd_and_the_most_variable_cpgs_over_the_training_rows(cohort, monkeypatch):
    """Streamed in chunks, NaNs skipped, only the given rows counted, CpGs never observed there ranked last."""
    monkeypatch.setattr(model_inputs, "CHUNK_ROWS", 7)  # several chunks, the last one short
    adata = cohort.copy()
    rows = np.arange(0, adata.n_obs, 2)
    adata.X[:, 0] = 0.5
    adata.X[1::2, 0] = np.arange(adata.n_obs // 2) % 2  # the largest spread, but only outside `rows`
    adata.X[rows, 1] = np.nan  # observed only outside `rows`
    inputs = prepare_inputs(adata, MethylGPT(MethylGPTVocab.from_probes(adata.var_names)), layer=None, var_key=None)
    betas = adata.X[rows][:, inputs.in_data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
        expected = np.nanstd(betas, axis=0)
    sd = column_sd(inputs, rows)
    np.testing.assert_allclose(sd, expected, rtol=1e-6, atol=1e-7)
    chosen = most_variable(sd, 10)
    np.testing.assert_array_equal(chosen, np.sort(np.argsort(-np.nan_to_num(expected, nan=-1.0), kind="stable")[:10]))
    assert not {*np.flatnonzero(np.isin(inputs.in_data, [0, 1]))} & {*chosen}
    assert len(most_variable(sd, adata.n_vars)) == adata.n_vars


def test_backed_file_gives_the_same_first_epoch(cohort, tmp_path):
    path = tmp_path / "cohort.h5ad"
    cohort.write_h5ad(path)
    in_memory = ef.tl.pretrain(cohort.copy(), max_epochs=1, **SMALL)
    backed = ef.tl.pretrain(path, max_epochs=1, **SMALL)
    np.testing.assert_allclose(_losses(backed), _losses(in_memory), rtol=1e-6)
    streamed = ef.tl.pretrain(ad.read_h5ad(path, backed="r"), max_epochs=1, **SMALL)
    np.testing.assert_allclose(_losses(streamed), _losses(in_memory), rtol=1e-6)


def test_sd_pass_only_where_subsets_use_it(cohort, monkeypatch):
    """The sd over the training rows is read only for sd-drawn subsets; panels past the weighted draw are refused."""
    from epiformer.models.methylgpt import _pretraining

    passes = []
    monkeypatch.setattr(_pretraining, "column_sd", lambda *a: passes.append(1) or column_sd(*a))
    for per_step in (None, 48):  # every CpG in every step: no sd pass
        ef.tl.pretrain(cohort.copy(), max_epochs=1, cpgs_per_step=per_step, **SMALL)
    assert passes == []
    ef.tl.pretrain(cohort.copy(), max_epochs=1, cpgs_per_step=12, **SMALL)
    assert passes == [1]
    monkeypatch.setattr(_pretraining, "MAX_WEIGHTED_CPGS", 40)
    with pytest.raises(ValueError, match="at most 40 CpGs and the model sees 48 .* `cpg_sampling='uniform'`"):
        ef.tl.pretrain(cohort.copy(), max_epochs=1, cpgs_per_step=12, **SMALL)
    ef.tl.pretrain(cohort.copy(), max_epochs=1, cpgs_per_step=12, cpg_sampling="uniform", **SMALL)


def test_resume_continues_exactly(cohort, tmp_path):
    """Also the CpG subsets (drawn by sd, the default) repeat: 12 of the 48 CpGs per step."""
    full = ef.tl.pretrain(cohort.copy(), max_epochs=3, ckpt_dir=tmp_path / "a", cpgs_per_step=12, **SMALL)
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt", "last.ckpt"}
    # from the end of the first epoch (the schedule spans the 3 epochs of the run, so resume from that run)
    resumed = ef.tl.pretrain(
        cohort.copy(),
        max_epochs=3,
        ckpt_dir=tmp_path / "a",
        resume=tmp_path / "a" / "epoch=0.ckpt",
        cpgs_per_step=12,
        **SMALL,
    )
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_losses(resumed), _losses(full)[1:], rtol=1e-6)


def test_resume_with_other_options_warns(cohort, tmp_path):
    """A checkpoint records its run's options: resumed with others (or from an older file without them), it warns."""
    ef.tl.pretrain(cohort.copy(), max_epochs=1, ckpt_dir=tmp_path, cpgs_per_step=12, lr=np.float64(3e-3), **SMALL)
    checkpoint = tmp_path / "epoch=0.ckpt"
    saved = torch.load(checkpoint, weights_only=True)[RUN_OPTIONS_KEY]  # plain values, a NumPy `lr` too
    assert saved["cpg_sampling"] == "sd" and saved["mvc_weight"] == 0.0 and saved["cpgs_per_step"] == 12
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ef.tl.pretrain(cohort.copy(), max_epochs=2, resume=checkpoint, cpgs_per_step=12, lr=3e-3, **SMALL)
    assert not [w for w in caught if "other than the checkpoint" in str(w.message)]  # the same options: no warning
    with pytest.warns(UserWarning, match=r"2 options other than .*cpg_sampling 'sd' -> 'uniform', mvc_weight 0.0 -> 1"):
        ef.tl.pretrain(
            cohort.copy(), max_epochs=2, resume=checkpoint, cpgs_per_step=12, cpg_sampling="uniform", mvc_weight=1,
            **SMALL,
        )  # fmt: skip
    older = torch.load(checkpoint, weights_only=True)
    del older[RUN_OPTIONS_KEY]
    torch.save(older, tmp_path / "older.ckpt")
    with pytest.warns(UserWarning, match="does not record its training options"):
        ef.tl.pretrain(cohort.copy(), max_epochs=2, resume=tmp_path / "older.ckpt", cpgs_per_step=12, **SMALL)


_DDP = """
import sys
from pathlib import Path
import epiformer as ef

adata = ef.datasets.synthetic_methylome(64, 32, random_state=0)
model = ef.tl.pretrain(
    adata, d_model=16, n_layers=1, n_heads=2, max_epochs=2, batch_size=8, cpgs_per_step=16, accelerator="cpu",
    devices=2, strategy="ddp", progress=False,
)
import torch.distributed as dist
rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
# one file per rank: the two processes' prints would interleave on a shared stdout
Path(sys.argv[2], f"rank{rank}.txt").write_text(str(adata.uns["methylgpt_pretrain"]["params"]["world_size"]))
if rank == 0:
    model.save_pretrained(sys.argv[1])
"""


def test_two_process_ddp_on_cpu(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(_DDP))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2", "2"]  # both ranks, world size 2
    model = MethylGPT.from_pretrained(tmp_path / "model")
    assert model.d_model == 16 and len(model.vocab.probes) == 32
    assert all(p.requires_grad for p in model.parameters())


def test_bad_input(cohort):
    adata = cohort.copy()
    with pytest.raises(ValueError, match="mask_ratio"):
        ef.tl.pretrain(adata, mask_ratio=1.5, **SMALL)
    with pytest.raises(ValueError, match="too few"):
        ef.tl.pretrain(adata[:1].copy(), **SMALL)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ef.tl.pretrain(adata, resume="nowhere.ckpt", **SMALL)
    mvalues = adata.copy()
    mvalues.X = np.log2(mvalues.X / (1 - mvalues.X))
    with pytest.raises(ValueError, match="ef.pp.to_beta"):
        ef.tl.pretrain(mvalues, **SMALL)
    with pytest.raises(ValueError, match="None of the model's"):
        ef.tl.pretrain(adata, model=MethylGPT(MethylGPTVocab.from_probes(["cg99999999"])), **SMALL)
    assert "methylgpt_pretrain" not in adata.uns


def test_rows_are_read_from_a_backed_matrix(cohort, tmp_path):
    path = tmp_path / "rows.h5ad"
    cohort.write_h5ad(path)
    columns = np.array([5, 0, 7])
    rows = BetaRows(np.array([3, 10]), columns, path=path)
    np.testing.assert_array_equal(rows[1].numpy(), cohort.X[10, columns])
    assert rows.__getstate__()["matrix"] is None  # workers open the file themselves


@pytest.mark.slow
def test_pretrained_imputation_beats_mean_and_knn():
    """With every setting at its default, MethylGPT imputes a synthetic cohort better than KNNImputer.

    1,200 samples x 1,000 CpGs; 30 % of the observed values of 200 held-out samples hidden and imputed by a model
    pretrained from fresh weights on the other 1,000 (the default run: 400 epochs of a 2-layer model trained by its
    MLM head on 200-CpG subsets drawn by sd).
    """
    from sklearn.impute import KNNImputer

    adata = ef.datasets.synthetic_methylome(1200, 1000, missing_rate=0.02, random_state=0)
    train, test = adata[:1000].copy(), adata[1000:].copy()
    model = ef.tl.pretrain(train, progress=False)
    truth = test.X.copy()
    hide = (np.random.default_rng(0).random(truth.shape) < 0.3) & ~np.isnan(truth)
    test.X[hide] = np.nan
    ef.tl.impute(test, model, progress=False)
    ours = np.abs(test.layers["methylgpt_imputed"][hide] - truth[hide]).mean()
    means = np.nanmean(train.X, axis=0)
    mean_mae = np.abs(np.broadcast_to(means, truth.shape)[hide] - truth[hide]).mean()
    knn = KNNImputer(n_neighbors=10).fit(train.X).transform(test.X)
    knn_mae = np.abs(knn[hide] - truth[hide]).mean()
    print(f"imputation MAE: MethylGPT {ours:.4f}, per-CpG mean {mean_mae:.4f}, KNNImputer {knn_mae:.4f}")
    print(model.history.round(4).to_string())
    assert ours < mean_mae and ours < knn_mae
