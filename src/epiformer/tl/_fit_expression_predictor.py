"""Train the expression + sequence methylation predictor on a MuData of paired samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from epiformer._constants import Key
from epiformer._logging import timed, warn
from epiformer._utils import record_params, renamed_options

if TYPE_CHECKING:
    from mudata import MuData

    from epiformer.models import ExpressionPredictor


@renamed_options(enable_progress_bar="progress")
def fit_expression_predictor(
    mdata: MuData,
    *,
    architecture: Literal["factorized", "levy_jurgenson"] = "factorized",
    rna_mod: str = Key.mod.rna,
    methyl_mod: str = Key.mod.methyl,
    rna_layer: str | None = None,
    methyl_layer: str | None = None,
    scaling: Literal["minmax", "standard"] | None = None,
    n_neighbors: int = 16,
    max_epochs: int = 50,
    lr: float | None = None,
    batch_size: int = 512,
    cpg_batch: int = 128,
    sample_batch: int = 64,
    early_stopping_patience: int | None = 5,
    accelerator: str = "auto",
    devices: int | list[int] | str = "auto",
    random_state: int = 0,
    progress: bool = True,
    max_time: float | None = None,
    key_added: str = Key.uns.expression_predictor,
    **kwargs: Any,
) -> ExpressionPredictor:
    """Train a model predicting methylation from sequence, expression and CpG-gene distances.

    Needs, on the MuData: :func:`epiformer.pp.cpg_sequences`, :func:`epiformer.pp.cpg_gene_distances` and
    :func:`epiformer.pp.split_pairs`. The model learns on training CpGs x training samples, stops early on
    validation CpGs x validation samples and is judged on test CpGs x test samples
    (:func:`evaluate_methylation`), so a test pair shares neither its CpG nor its sample with training.

    Parameters
    ----------
    mdata
        Samples with an expression modality (log expression) and a methylation modality (betas).
    architecture
        ``"factorized"`` (default; attention over the genes near each CpG, per-CpG and per-sample parts
        computed once per block) or ``"levy_jurgenson"`` (the published network, computed per pair).
    rna_mod
        Expression modality.
    methyl_mod
        Methylation modality.
    rna_layer
        Layer of log expression (`None` = `.X`).
    methyl_layer
        Layer of betas (`None` = `.X`).
    scaling
        Expression scaling fit on training samples (``"minmax"`` to (10, 100) or ``"standard"``); default
        per architecture.
    n_neighbors
        Genes attended per CpG (``factorized``).
    max_epochs
        Passes over the training pairs.
    lr
        Adam learning rate; default 3e-3 for ``factorized`` and 1e-3 for ``levy_jurgenson``.
    batch_size
        Pairs per step (``levy_jurgenson``).
    cpg_batch
        CpGs per block.
    sample_batch
        Samples per block.
    early_stopping_patience
        Stop after this many epochs without a lower validation MAE; `None` never stops early.
    accelerator
        Lightning accelerator.
    devices
        Lightning devices.
    random_state
        Seed of weight initialisation and batch order.
    progress
        Show a progress bar.
    max_time
        Wall-clock training budget in seconds; `None` for none.
    key_added
        `mdata.uns` key for the settings and the training history.
    **kwargs
        Network settings (e.g. ``n_heads``, ``hidden``) and :class:`lightning.pytorch.Trainer` options.

    Returns
    -------
    The trained :class:`epiformer.models.ExpressionPredictor`. Writes `mdata.uns[key_added]` with `params`,
    `n_parameters` and `history` (per `epoch`, `train_loss` and `val_loss`; see
    :func:`epiformer.pl.training_history`).
    """
    from epiformer.models.expression_predictor import ExpressionPredictor, network_options

    if "early_stopping" in kwargs:
        warn(
            "`early_stopping=` is deprecated; pass `early_stopping_patience=None` to train without early stopping.",
            FutureWarning,
        )
        if not kwargs.pop("early_stopping"):
            early_stopping_patience = None
    network = {k: kwargs.pop(k) for k in list(kwargs) if k in network_options()}
    with timed("ef.tl.fit_expression_predictor") as written:
        model = ExpressionPredictor(
            mdata,
            rna_mod=rna_mod,
            methyl_mod=methyl_mod,
            rna_layer=rna_layer,
            methyl_layer=methyl_layer,
            architecture=architecture,
            scaling=scaling,
            n_neighbors=n_neighbors,
            random_state=random_state,
            **network,
        )
        model.train(
            max_epochs=max_epochs,
            lr=lr,
            batch_size=batch_size,
            cpg_batch=cpg_batch,
            sample_batch=sample_batch,
            early_stopping_patience=early_stopping_patience,
            accelerator=accelerator,
            devices=devices,
            random_state=random_state,
            progress=progress,
            max_time=max_time,
            **kwargs,
        )
        record_params(
            mdata,
            key_added,
            {
                "architecture": architecture,
                "scaling": model.config["scaling"],
                "n_neighbors": n_neighbors,
                "max_epochs": max_epochs,
                "lr": model.train_params["lr"],
                "random_state": random_state,
                "rna_mod": rna_mod,
                "methyl_mod": methyl_mod,
                "rna_layer": rna_layer,
                "methyl_layer": methyl_layer,
                "network": model.config["network"],
            },
            n_parameters=model.n_parameters,
            history={name: model.history[name].tolist() for name in model.history.columns},
        )
        written.append(f"uns['{key_added}']")
    return model
