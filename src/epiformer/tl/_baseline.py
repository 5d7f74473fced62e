"""Classic baselines in the same API as the fine-tuned models: the ElasticNet clock and logistic regression."""

from __future__ import annotations

import inspect
from typing import Any, Literal

import numpy as np
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_data, doc_layer, doc_mod_methyl, doc_params, doc_random_state
from epiformer._logging import timed
from epiformer._probe_ids import check_coverage
from epiformer._targets import resolve_target
from epiformer._utils import get_matrix, renamed_options, select_modality, to_dense_float
from epiformer._validation import check_betas, check_choice, refuse_all_missing
from epiformer.models import Predictor
from epiformer.pp import align_to_vocab


def _settled_defaults(estimator: type, **values: Any) -> dict[str, Any]:
    """`values` for the options whose default this scikit-learn release is changing (its default is ``"warn"``).

    Older releases, where the option is absent or not in transition, keep their own default.
    """
    defaults = inspect.signature(estimator).parameters
    return {name: value for name, value in values.items() if name in defaults and defaults[name].default == "warn"}


class BaselinePredictor(Predictor):
    """A scikit-learn pipeline (mean imputation, scaling, a linear model) over a fixed list of CpGs.

    Made by :func:`epiformer.tl.fit_baseline`; apply it with :func:`epiformer.tl.predict`.
    """

    def __init__(self, pipeline, *, target: str, task: str, classes: list[str] | None, features, method: str):
        self.pipeline = pipeline
        self.target = target
        self.task = task
        self.classes = classes
        self.features = list(features)
        self.method = method

    def predict_values(self, adata: AnnData, *, layer: str | None = None, **_: Any) -> np.ndarray:
        """Predicted values (regression) or class probabilities (classification) for every sample.

        CpGs of the training data that `adata` lacks are filled with their training means. The pipeline runs on
        the CPU in one pass, so the network options of :meth:`Predictor.predict_values` do not apply.
        """
        aligned = align_to_vocab(adata, self.features, layer=layer)
        check_coverage(aligned.uns[Key.uns.vocab_coverage], who="the baseline", fallback="filled with training means")
        refuse_all_missing(np.asarray(aligned.X), what="the baseline's CpGs in the data")
        if self.task == "regression":
            return self.pipeline.predict(aligned.X)
        return self.pipeline.predict_proba(aligned.X)

    def describe(self) -> dict:
        """Settings recorded next to the predictions."""
        return {**super().describe(), "method": self.method, "n_features": len(self.features)}


@doc_params(data=doc_data, layer=doc_layer, random_state=doc_random_state, mod=doc_mod_methyl)
@renamed_options(adata="data")
def fit_baseline(
    data: AnnData | MuData,
    *,
    mod: str | None = None,
    target: str,
    method: Literal["auto", "elasticnet", "logistic"] = "auto",
    layer: str | None = None,
    split_key: str = Key.obs.split,
    random_state: int = 0,
) -> BaselinePredictor:
    """Fit the classic baseline for a target: an ElasticNet clock (regression) or logistic regression.

    The model sees the beta values directly (missing values filled with training means, CpGs standardised),
    as Horvath-style clocks do. With a split in `obs[split_key]` it trains on the ``"train"`` and ``"val"``
    samples (choosing its regularisation by 5-fold cross-validation), so it can be scored on the same
    ``"test"`` samples as a fine-tuned model; without one it trains on every sample with a target.

    Parameters
    ----------
    {data}
    {mod}
    target
        `obs` column to predict; samples without a value are left out (with a warning).
    method
        ``"elasticnet"`` (:class:`sklearn.linear_model.ElasticNetCV`, l1 ratio 0.5 as in Horvath's
        clock), ``"logistic"`` (:class:`sklearn.linear_model.LogisticRegressionCV`), or ``"auto"`` to
        pick by the target's type.
    {layer}
    split_key
        `obs` column holding the split (see :func:`epiformer.pp.split_samples`).
    {random_state}

    Returns
    -------
    The fitted :class:`~epiformer.tl.BaselinePredictor`.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import ElasticNetCV, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with timed("ef.tl.fit_baseline"):
        adata = select_modality(data, mod, default=Key.mod.methyl)
        task = {"elasticnet": "regression", "logistic": "classification"}.get(method, "auto")
        check_choice(method, ("auto", "elasticnet", "logistic"), name="method")
        spec = resolve_target(adata, target, task=task)
        rows, y = spec.rows, spec.values
        if split_key in adata.obs:
            fit = adata.obs[split_key].iloc[rows].isin(["train", "val"]).to_numpy()
            rows, y = rows[fit], y[fit]
            if len(rows) < 10:
                msg = f"Only {len(rows)} training samples with a {target!r} value; at least 10 are needed."
                raise ValueError(msg)
        X = to_dense_float(get_matrix(adata, layer))[rows]
        check_betas(X, what="The methylation matrix")
        refuse_all_missing(X, what="the training samples' methylation matrix")
        imputer = SimpleImputer(strategy="mean", keep_empty_features=True)
        if spec.task == "regression":
            model = ElasticNetCV(l1_ratio=0.5, alphas=30, cv=5, max_iter=5000, random_state=random_state)
            name = "elasticnet"
        else:
            model = LogisticRegressionCV(
                Cs=8,
                cv=min(5, int(np.bincount(y).min())),
                max_iter=2000,
                scoring="accuracy",
                random_state=random_state,
                **_settled_defaults(LogisticRegressionCV, l1_ratios=(0.0,), use_legacy_attributes=False),
            )
            name = "logistic"
        pipeline = make_pipeline(imputer, StandardScaler(), model).fit(X, y)
        return BaselinePredictor(
            pipeline, target=target, task=spec.task, classes=spec.classes, features=adata.var_names, method=name
        )
