"""Scores of predictions against the truth, shared by `tl.evaluate` and the plots that title with them."""

from __future__ import annotations

import numpy as np
from scipy import stats


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MedAE, MAE, RMSE, Pearson, Spearman and R2 (the metrics of the MethylGPT age benchmarks)."""
    from sklearn import metrics

    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    return {
        "medae": float(metrics.median_absolute_error(truth, pred)),
        "mae": float(metrics.mean_absolute_error(truth, pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, pred))),
        "pearson": float(stats.pearsonr(truth, pred)[0]) if np.ptp(pred) > 0 else float("nan"),
        "spearman": float(stats.spearmanr(truth, pred)[0]) if np.ptp(pred) > 0 else float("nan"),
        "r2": float(metrics.r2_score(truth, pred)),
    }


def classification_metrics(truth: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and AUROC (one-vs-rest macro average beyond two classes).

    `truth` holds class codes ``0 .. k-1`` and `proba` the ``(n, k)`` class probabilities.
    """
    from sklearn import metrics

    pred = proba.argmax(axis=1)
    present = np.unique(truth)
    if len(present) < 2:
        auroc = float("nan")
    elif proba.shape[1] == 2:
        auroc = float(metrics.roc_auc_score(truth, proba[:, 1]))
    else:
        auroc = float(
            metrics.roc_auc_score(
                truth, proba[:, present] / proba[:, present].sum(1, keepdims=True), multi_class="ovr", labels=present
            )
        )
    return {
        "accuracy": float(metrics.accuracy_score(truth, pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(truth, pred)),
        "auroc": auroc,
    }
