"""MethylGPT on a real cohort: imputation, embedding and fine-tuning against classical baselines, per training minute.

Job: the TCGA IDH-mutant glioma cohort of ``../shared/data`` (450 patients x 1,216 CpGs of 450k betas, three
methylation subtypes, Ceccarelli et al. 2016; see ``../shared/data/README.md``). For each split seed a 70/30
patient split stratified by subtype, then MethylGPT trained with epiformer's DEFAULT settings (only the data,
``max_time``, ``random_state`` and ``progress=False`` are passed; fine-tuning also names its target and task;
``--pretrain-options`` / ``--finetune-options`` pass a training recipe instead, as JSON):

- imputation: 30 % of the test patients' values hidden at random (seeded), MAE on the hidden values of
  ``ef.tl.pretrain`` (fresh random weights, training patients only) + ``ef.tl.impute``, beside the per-CpG training
  mean and ``sklearn.impute.KNNImputer(n_neighbors=10)`` fit on the training and the masked test rows;
- embedding: test accuracy of a kNN(15) subtype classifier fit on the training patients, on ``ef.tl.embed``'s
  ``obsm['X_methylgpt']`` of the pretrained model (unmasked betas; the published ``<cls>`` readout, and
  ``readout="mean"``), beside PCA(50) of the raw betas (fit on train);
- fine-tuning: ``ef.tl.finetune(target="label", task="classification")`` of the model pretrained with the largest
  pretraining budget, test accuracy beside ``LogisticRegression(max_iter=2000)`` on the raw betas.

Learning curves: each pretraining budget in ``--pretrain-budgets`` (seconds) is a separate ``ef.tl.pretrain`` from
fresh weights with ``max_time=budget`` (the learning-rate schedule fits the budget, so a shorter budget is a
different run, not an earlier point of a longer one); ``--curve-minutes`` also scores the per-epoch checkpoints of
the largest-budget run (``ckpt_dir=``) at those minutes, the learning curve of that one run. Each
``--finetune-budgets`` value is one ``ef.tl.finetune`` of the largest-budget model. ``--jobs`` runs the seeds side
by side, one process and one torch thread each.

Goals (the issue's): MethylGPT's imputation MAE <= KNNImputer's; kNN accuracy on the embedding >= 0.95 x PCA(50)'s;
fine-tuned accuracy >= 0.95 x logistic regression's, at 30 min of pretraining and 10 of fine-tuning on two CPU
cores, the mean over three split seeds. The goal run below puts the three seeds side by side on a 2-core machine
(about 0.6 of a core each, so fewer steps fit in a budget than on two cores of one's own) and takes about an hour;
the default schedule (3 seeds x pretraining 60 + 180 + 360 s and fine-tuning 60 + 180 s) is a cheaper curve.

Output: a table on stdout (mean and std over seeds per budget, baselines alongside, goals pass/fail), a CSV of
every measurement and a 3-panel figure against training minutes (``--out``, default
``benchmarks/results/methylgpt_cohort``: ``.csv`` and ``.png``).

```bash
.venv/bin/python benchmarks/bench_methylgpt_cohort.py --quick   # 1 seed, pretrain 20 s, fine-tune 10 s
.venv/bin/python benchmarks/bench_methylgpt_cohort.py --jobs 2   # 3 seeds, the default budgets (not timed)
.venv/bin/python benchmarks/bench_methylgpt_cohort.py --jobs 3 --pretrain-budgets 1800 --finetune-budgets 120 600 \
    --curve-minutes 3 10                                           # the goal run
.venv/bin/python benchmarks/bench_methylgpt_cohort.py --seeds 0 --pretrain-budgets 120 480 --finetune-budgets 60 180
```
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "TCGA_glioma_IDHmut_450k_betas.parquet"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "methylgpt_cohort"
TEST_SIZE, HIDDEN = 0.3, 0.3
KNN_IMPUTE, KNN_CLASSIFY, N_PCS = 10, 15, 50
RATIO = 0.95


def load_cohort(path: Path) -> AnnData:
    """The cohort as an AnnData: float32 betas, probe IDs as `var_names`, the subtype in ``obs['label']``."""
    if not path.is_file():
        msg = f"cohort file {path} not found; pass its location with --data PATH"
        raise SystemExit(msg)
    frame = pd.read_parquet(path)
    labels = frame.pop("label").astype(str)
    adata = AnnData(frame.to_numpy(dtype=np.float32))
    adata.obs_names = frame.index.astype(str)
    adata.var_names = frame.columns.astype(str)
    adata.obs["label"] = pd.Categorical(labels.to_numpy())
    return adata


def split(adata: AnnData, seed: int) -> tuple[AnnData, AnnData]:
    """70/30 patient split stratified by subtype."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(adata.n_obs)
    train, test = train_test_split(rows, test_size=TEST_SIZE, stratify=adata.obs["label"], random_state=seed)
    return adata[np.sort(train)].copy(), adata[np.sort(test)].copy()


def hide(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `x` with `HIDDEN` of its values set to NaN at random, and the mask of the hidden ones."""
    mask = np.random.default_rng(seed).random(x.shape) < HIDDEN
    masked = x.copy()
    masked[mask] = np.nan
    return masked, mask


def impute_baselines(train: np.ndarray, masked: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE on the hidden values of the per-CpG training mean and of KNNImputer (fit on train + masked test)."""
    from sklearn.impute import KNNImputer

    mean = np.broadcast_to(train.mean(axis=0), truth.shape)
    knn = KNNImputer(n_neighbors=KNN_IMPUTE).fit_transform(np.vstack([train, masked]))[len(train) :]
    return {
        "impute_mae_mean": float(np.abs(mean - truth)[mask].mean()),
        "impute_mae_knn": float(np.abs(knn - truth)[mask].mean()),
    }


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a kNN(15) classifier fit on the training rows."""
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(n_neighbors=KNN_CLASSIFY).fit(train_x, train_y).score(test_x, test_y))


def classify_baselines(train: AnnData, test: AnnData) -> dict[str, float]:
    """kNN accuracy on PCA(50) of the raw betas (fit on train) and logistic regression accuracy on the raw betas."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    y_train, y_test = train.obs["label"].to_numpy(), test.obs["label"].to_numpy()
    pca = PCA(n_components=N_PCS, random_state=0).fit(train.X)
    logistic = LogisticRegression(max_iter=2000).fit(train.X, y_train)
    return {
        "knn_acc_pca": knn_accuracy(pca.transform(train.X), y_train, pca.transform(test.X), y_test),
        "logreg_acc": float(logistic.score(test.X, y_test)),
    }


def score_pretrained(train: AnnData, test: AnnData, masked: np.ndarray, mask: np.ndarray, model) -> dict[str, float]:
    """Imputation MAE on the hidden test values and kNN accuracy on both readouts of `model`."""
    import epiformer as ef

    start = time.perf_counter()
    hidden = AnnData(masked, obs=test.obs.copy(), var=test.var.copy())
    ef.tl.impute(hidden, model, progress=False)
    imputed = hidden.layers["methylgpt_imputed"]
    both = AnnData(np.vstack([train.X, test.X]), var=train.var.copy())
    ef.tl.embed(both, model, progress=False)
    ef.tl.embed(both, model, readout="mean", key_added="X_mean", progress=False)
    emb, mean_emb = both.obsm["X_methylgpt"], both.obsm["X_mean"]
    y_train, y_test = train.obs["label"].to_numpy(), test.obs["label"].to_numpy()
    return {
        "impute_mae_methylgpt": float(np.abs(imputed - test.X)[mask].mean()),
        "knn_acc_methylgpt": knn_accuracy(emb[: train.n_obs], y_train, emb[train.n_obs :], y_test),
        "knn_acc_methylgpt_mean": knn_accuracy(mean_emb[: train.n_obs], y_train, mean_emb[train.n_obs :], y_test),
        "eval_s": time.perf_counter() - start,
    }


def checkpoint_rows(train, test, masked, mask, model, folder: Path, start: float, minutes: list[float], budget: float):
    """Scores of the run's per-epoch checkpoints: for each of `minutes`, the last one written by then.

    The checkpoints are this script's own files (a Lightning checkpoint is a pickle: never load one you did not
    write); their weights are loaded into a copy of the trained model.
    """
    import copy

    written = sorted(
        (p.stat().st_mtime - start, p) for p in folder.glob("epoch=*.ckpt")
    )  # (seconds into the run, file)
    rows = []
    for minute in minutes:
        before = [(t, p) for t, p in written if t <= minute * 60]
        if not before:
            continue
        seconds, path = before[-1]
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        snapshot = copy.deepcopy(model)
        snapshot.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
        epoch = int(path.stem.split("=")[1]) + 1
        row = {"stage": "pretrain", "point": f"checkpoint at {minute:g} min", "budget_s": budget}
        row |= {"train_minutes": seconds / 60, "epochs": epoch, **score_pretrained(train, test, masked, mask, snapshot)}
        rows.append(row)
    return rows


def pretrain_and_score(
    train: AnnData,
    test: AnnData,
    masked: np.ndarray,
    mask: np.ndarray,
    budget: float,
    seed: int,
    options: dict,
    curve_minutes: list[float] = (),
) -> tuple[list[dict[str, float]], object]:
    """Pretrain from fresh weights for `budget` seconds and score the model; with `curve_minutes`, also the
    run's checkpoints at those minutes (its learning curve)."""
    import tempfile

    import epiformer as ef

    with tempfile.TemporaryDirectory() as folder:
        start, wall = time.perf_counter(), time.time()
        ckpt = {"ckpt_dir": folder} if curve_minutes else {}
        model = ef.tl.pretrain(train.copy(), max_time=budget, random_state=seed, progress=False, **ckpt, **options)
        seconds = time.perf_counter() - start
        rows = checkpoint_rows(train, test, masked, mask, model, Path(folder), wall, curve_minutes, budget)
    row = {"stage": "pretrain", "point": "end", "budget_s": budget, "train_minutes": seconds / 60}
    rows.append(row | {"epochs": len(model.history), **score_pretrained(train, test, masked, mask, model)})
    return rows, model


def finetune_and_score(
    train: AnnData, test: AnnData, model: object, budget: float, seed: int, options: dict
) -> dict[str, float]:
    """Fine-tune the pretrained model on the subtype for `budget` seconds; test accuracy."""
    import epiformer as ef

    start = time.perf_counter()
    predictor = ef.tl.finetune(
        train.copy(),
        model,
        target="label",
        task="classification",
        max_time=budget,
        random_state=seed,
        progress=False,
        **options,
    )
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    scored = ef.tl.predict(test, predictor, progress=False, copy=True)
    predicted = scored.obs["label_pred"].astype(str).to_numpy()
    return {
        "stage": "finetune",
        "point": "end",
        "budget_s": budget,
        "train_minutes": seconds / 60,
        "epochs": len(predictor.history),
        "finetune_acc_methylgpt": float((predicted == test.obs["label"].astype(str).to_numpy()).mean()),
        "eval_s": time.perf_counter() - start,
    }


def run_seed(adata: AnnData, seed: int, args: argparse.Namespace) -> list[dict]:
    """Every measurement of one split seed, one dict per training run (baselines repeated on each)."""
    train, test = split(adata, seed)
    masked, mask = hide(test.X, seed)
    base = {"seed": seed, **impute_baselines(train.X, masked, test.X, mask), **classify_baselines(train, test)}
    print(f"seed {seed}: baselines {_fmt(base)}", flush=True)
    rows, model = [], None
    budgets = sorted(args.pretrain_budgets)
    for budget in budgets:
        curve = args.curve_minutes if budget == budgets[-1] else []
        scored, model = pretrain_and_score(train, test, masked, mask, budget, seed, args.pretrain_options, curve)
        for row in scored:
            rows.append({**base, **row})
            print(f"seed {seed}: {_fmt(row)}", flush=True)
    for budget in sorted(args.finetune_budgets):
        row = finetune_and_score(train, test, model, budget, seed, args.finetune_options)
        rows.append({**base, **row})
        print(f"seed {seed}: {_fmt(row)}", flush=True)
    return rows


def _fmt(row: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "seed")


def _ms(values: pd.Series) -> str:
    """Mean ± std over seeds (std 0 for one seed)."""
    return f"{values.mean():.4f} ± {values.std(ddof=0):.4f}"


def summarise(table: pd.DataFrame) -> str:
    """The printed table: per budget, MethylGPT's metric and its baseline, and the goal's pass/fail."""
    goals = (
        ("pretrain", "imputation MAE", "impute_mae_methylgpt", "impute_mae_knn", "KNNImputer", "<=", 1.0),
        ("pretrain", "kNN accuracy", "knn_acc_methylgpt", "knn_acc_pca", "PCA(50)", ">=", RATIO),
        ("pretrain", "kNN accuracy, mean readout", "knn_acc_methylgpt_mean", "knn_acc_pca", "PCA(50)", ">=", RATIO),
        ("finetune", "fine-tuned accuracy", "finetune_acc_methylgpt", "logreg_acc", "logistic regression", ">=", RATIO),
    )
    lines = [
        "| metric | budget (s) | weights | training min | epochs | MethylGPT | baseline | goal | pass |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for stage, name, ours, peer, peer_name, op, factor in goals:
        groups = table[table["stage"] == stage].groupby(["budget_s", "point"], sort=False)
        for (budget, point), group in sorted(groups, key=lambda item: (item[0][0], item[1]["train_minutes"].mean())):
            m, b = group[ours].mean(), group[peer].mean()
            ok = m <= b * factor if op == "<=" else m >= b * factor
            goal = f"{op} {factor:g} x {peer_name}" if factor != 1 else f"{op} {peer_name}"
            verdict = ("pass" if ok else "FAIL") if point == "end" else "(curve)"
            lines.append(
                f"| {name} | {budget:g} | {point} | {group['train_minutes'].mean():.2f} | "
                f"{group['epochs'].mean():.1f} | {_ms(group[ours])} | {peer_name} {_ms(group[peer])} | {goal} | "
                f"{verdict} |"
            )
    first = table.drop_duplicates("seed")
    lines.append(f"(per-CpG training mean imputation MAE: {_ms(first['impute_mae_mean'])})")
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> None:
    """Three panels against training minutes, baselines as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        (
            "pretrain",
            {"MethylGPT": "impute_mae_methylgpt"},
            {"KNNImputer": "impute_mae_knn", "CpG mean": "impute_mae_mean"},
            "MAE",
        ),
        (
            "pretrain",
            {"MethylGPT <cls>": "knn_acc_methylgpt", "MethylGPT mean": "knn_acc_methylgpt_mean"},
            {"PCA(50)": "knn_acc_pca"},
            "kNN(15) accuracy",
        ),
        ("finetune", {"MethylGPT": "finetune_acc_methylgpt"}, {"logistic regression": "logreg_acc"}, "test accuracy"),
    )
    titles = ("imputation (30 % hidden)", "embedding", "fine-tuning")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, (stage, series, peers, ylabel), title in zip(axes, panels, titles, strict=True):
        group = table[table["stage"] == stage].groupby(["budget_s", "point"])
        minutes = group["train_minutes"].mean()
        order = np.argsort(minutes.to_numpy())
        for (label, ours), colour in zip(series.items(), ("C0", "C4"), strict=False):
            mean, std = group[ours].mean().iloc[order], group[ours].std(ddof=0).iloc[order]
            ax.errorbar(minutes.iloc[order], mean, yerr=std, marker="o", color=colour, label=label)
        for (peer_name, col), colour in zip(peers.items(), ("C1", "C2"), strict=False):
            ax.axhline(table[col].mean(), color=colour, linestyle="--", label=peer_name)
        ax.set(xlabel="training minutes", ylabel=ylabel, title=title)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _quiet() -> None:
    """One torch thread, and Lightning's warnings and info messages off (in this process and each seed's)."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="lightning")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the TCGA glioma parquet file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds")
    parser.add_argument("--pretrain-budgets", type=float, nargs="+", default=[60, 180, 360], help="seconds")
    parser.add_argument("--finetune-budgets", type=float, nargs="+", default=[60, 180], help="seconds")
    parser.add_argument(
        "--curve-minutes",
        type=float,
        nargs="*",
        default=[],
        help="also score the largest-budget run's checkpoints at these minutes (its learning curve)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="seeds run side by side, one process each")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output prefix (.csv and .png are added)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, pretrain 20 s, fine-tune 10 s")
    parser.add_argument(
        "--pretrain-options",
        type=json.loads,
        default={},
        help="options of ef.tl.pretrain, e.g. '{\"cpgs_per_step\": 128}'",
    )
    parser.add_argument("--finetune-options", type=json.loads, default={}, help="options of ef.tl.finetune (JSON)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.pretrain_budgets, args.finetune_budgets = [0], [20], [10]
    _quiet()
    adata = load_cohort(args.data.resolve())
    print(
        f"{adata.n_obs} patients x {adata.n_vars} CpGs, subtypes {adata.obs['label'].value_counts().to_dict()}; "
        f"seeds {args.seeds}, pretraining budgets {args.pretrain_budgets} s, fine-tuning {args.finetune_budgets} s; "
        f"options: pretraining {args.pretrain_options or 'defaults'}, fine-tuning {args.finetune_options or 'defaults'}",
        flush=True,
    )
    start = time.perf_counter()
    if args.jobs > 1:  # one process per seed, each on one torch thread
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context, initializer=_quiet) as pool:
            runs = pool.map(run_seed, [adata] * len(args.seeds), args.seeds, [args] * len(args.seeds))
            rows = [row for run in runs for row in run]
    else:
        rows = [row for seed in args.seeds for row in run_seed(adata, seed, args)]
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    csv, png = args.out.with_suffix(".csv"), args.out.with_suffix(".png")
    table.to_csv(csv, index=False)
    plot(table, png)
    print(summarise(table), flush=True)
    print(f"wrote {csv} and {png}; {(time.perf_counter() - start) / 60:.1f} min in all", flush=True)


if __name__ == "__main__":
    main()
