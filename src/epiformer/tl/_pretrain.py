"""`ef.tl.pretrain`: MethylGPT's masked value modelling on a cohort, in memory or streamed from a backed file."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_params, doc_random_state
from epiformer._utils import as_generator, record_params
from epiformer._validation import check_unique
from epiformer.tl._model_inputs import ModelInputs, check_model, prepare_inputs, provenance

if TYPE_CHECKING:
    from epiformer.models import MethylGPT


def _open(data: AnnData | str | PathLike) -> tuple[AnnData, Path | None]:
    """The AnnData, and the file to stream rows from when it is backed (or given as a path)."""
    if isinstance(data, str | PathLike):
        path = Path(data)
        if path.suffix != ".h5ad" or not path.is_file():
            msg = f"{path} is not an .h5ad file; pass an AnnData or the path of an .h5ad file."
            raise ValueError(msg)
        return ad.read_h5ad(path, backed="r"), path
    if isinstance(data, AnnData):
        return data, Path(data.filename) if data.isbacked else None
    msg = f"`adata` must be an AnnData or the path of an .h5ad file, got {type(data).__name__}."
    raise TypeError(msg)


def _most_variable(inputs: ModelInputs, rows: np.ndarray, n: int) -> np.ndarray:
    """Input columns (sorted) of the `n` CpGs with the largest standard deviation over `rows`, read in chunks."""
    selected = np.zeros(inputs.X.shape[0], dtype=bool)
    selected[rows] = True
    total, square, count = (np.zeros(len(inputs.in_data)) for _ in range(3))
    for start, betas in inputs.chunks():
        betas = betas[selected[start : start + len(betas)]].astype(np.float64)
        observed = ~np.isnan(betas)
        betas[~observed] = 0.0
        total += betas.sum(axis=0)
        square += np.square(betas).sum(axis=0)
        count += observed.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.nan_to_num(square / count - np.square(total / count), nan=-1.0)  # unobserved CpGs last
    return np.sort(np.argsort(-variance, kind="stable")[:n])


@doc_params(layer=doc_layer, random_state=doc_random_state)
def pretrain(
    adata: AnnData | str | PathLike,
    *,
    model: MethylGPT | None = None,
    d_model: int = 64,
    n_layers: int = 6,
    n_heads: int = 4,
    dropout: float = 0.1,
    layer: str | None = None,
    var_key: str | None = None,
    mask_ratio: float = 0.3,
    mvc_weight: float = 1.0,
    cpgs_per_step: int | None = None,
    warmup_cpgs: int | None = None,
    warmup_epochs: int = 15,
    max_epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    lr_gamma: float = 0.9,
    adam_eps: float = 1e-8,
    val_size: float = 0.1,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str | None = None,
    ckpt_dir: str | PathLike | None = None,
    resume: str | PathLike | None = None,
    num_workers: int = 0,
    random_state: int = 0,
    progress: bool = True,
) -> MethylGPT:
    """Pretrain MethylGPT by masked value modelling, on one CPU, one GPU or many GPUs and nodes.

    As published: in every sample, `mask_ratio` of the observed CpGs are masked (value -1) and predicted by the
    MLM head and by the MVC head from the ``<cls>`` embedding (MSE at the masked positions, the second weighted by
    `mvc_weight`); missing CpGs are not attended. Unlike the authors' code, the mask is drawn afresh for every
    batch (theirs reseeds to 42 on every call); masks, shuffling and dropout are seeded by (`random_state`,
    epoch, batch, rank), so a run is reproducible and `resume` continues exactly. Adam (learning rate `lr`, epsilon `adam_eps`), the step
    schedule ``lr * lr_gamma ** epoch`` (0.9), gradient clipping at 1.0, bf16 mixed precision on CUDA.

    Training runs through a Lightning :class:`~lightning.pytorch.Trainer`: `accelerator`, `devices`,
    `num_nodes` and `strategy` (``"ddp"``, ``"fsdp"``, ...) are passed on. Rows are read as they are needed, so a
    backed AnnData (or an ``.h5ad`` path) larger than memory trains; each data-loader worker and each rank reads
    only its own shard of the samples.

    Parameters
    ----------
    adata
        Samples x CpGs of beta values: an AnnData (in memory or backed) or the path of an ``.h5ad`` file.
    model
        A :class:`~epiformer.models.MethylGPT` to train further (in place); `None` builds a new one over the data's
        CpGs with `d_model`, `n_layers`, `n_heads` and `dropout` (the authors' "tiny" model: 64, 6, 4, 0.1),
        its initial weights seeded by `random_state`.
    d_model, n_layers, n_heads, dropout
        Shape of a new model.
    {layer}
    var_key
        `var` column holding the probe IDs, if not `var_names`.
    mask_ratio
        Fraction of the observed CpGs masked in each sample.
    mvc_weight
        Weight of the MVC head's loss (published: 1). At 0 only the MLM head, the one that imputes, is trained. On
        a 2,000 x 2,000 synthetic cohort (held-out imputation MAE; per-CpG means 0.0425, KNNImputer 0.0242), every
        schedule tried with both losses levelled off at 0.029-0.031, while the MLM loss alone reached 0.0238 (12
        warm-up epochs, then 300 epochs of 200-CpG steps at learning-rate decay 0.993; the slow test's recipe).
    cpgs_per_step
        Train each step on a random subset of this many CpGs, drawn afresh for every batch (the model has no
        positional encoding, so a subset is a valid input, as in scGPT's gene sampling); the validation loss
        always covers every CpG. Attention costs the square of the sequence length, so on a large panel this
        makes a step many times cheaper. `None` (published): every CpG in every step.
    warmup_cpgs, warmup_epochs
        Train the first `warmup_epochs` epochs on only the `warmup_cpgs` CpGs with the largest standard deviation
        over the training samples, then on all of them (`None`, published: no warm-up). A model that sees every
        CpG (or random subsets of them) from the start can sit at per-CpG means for a long time: on a
        2,000-sample x 2,000-CpG synthetic cohort it had not left them after 130 epochs of 200-CpG steps, while
        12 warm-up epochs on the 200 most variable CpGs (``lr=2e-3``) moved it off them at once (held-out
        imputation MAE 0.031 after 60 epochs, against 0.0425 for per-CpG means). The default of 15 epochs leaves a
        margin at the default ``lr=1e-3``, at which 200 CpGs alone left the means after about 12 epochs.
    max_epochs, batch_size, lr
        Training length, samples per step and per device, Adam learning rate (published: 32 and 1e-3).
    lr_gamma
        The learning rate is multiplied by `lr_gamma` after every epoch (published: 0.9, for a few epochs over
        ~150,000 samples; many epochs over a small cohort want a value closer to 1).
    adam_eps
        Adam's epsilon. The authors used 1e-4, a setting for fp16 mixed precision; with it, gradients of the
        size a beta-value MSE gives are damped so much that, on a synthetic cohort, a model stayed at per-CpG
        means for 25 epochs where the default 1e-8 learned the between-CpG structure within 13.
    val_size
        Fraction of the samples held out for the validation loss.
    accelerator, devices, num_nodes, strategy
        Passed to :class:`lightning.pytorch.Trainer`.
    precision
        Lightning precision; `None` means ``"bf16-mixed"`` on CUDA, 32-bit elsewhere.
    ckpt_dir
        Folder for a Lightning checkpoint at the end of every epoch (``epoch=N.ckpt``, and ``last.ckpt``).
    resume
        A checkpoint written in `ckpt_dir` by an earlier call with the same data and settings: training continues
        from it (weights, optimiser, schedule and epoch).
    num_workers
        Data-loader worker processes per rank.
    {random_state}
    progress
        Show Lightning's progress bar.

    Returns
    -------
    The trained model (on the CPU, in evaluation mode) with `model.history`, a DataFrame of `epoch`, `train_loss`
    and `val_loss` (plot it with :func:`epiformer.pl.training_history`). When `adata` is an in-memory AnnData,
    `uns['methylgpt_pretrain']` records the settings and the history.
    """
    import lightning.pytorch as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from epiformer._lightning import HistoryCallback, make_trainer, quiet_lightning
    from epiformer.models import MethylGPT, MethylGPTVocab
    from epiformer.models.methylgpt._pretraining import BetaRows, PretrainModule

    if not 0 < mask_ratio < 1:
        msg = f"`mask_ratio` must be in (0, 1), got {mask_ratio!r}."
        raise ValueError(msg)
    if cpgs_per_step is not None and cpgs_per_step < 1:
        msg = f"`cpgs_per_step` must be a positive number of CpGs or None, got {cpgs_per_step!r}."
        raise ValueError(msg)
    if warmup_cpgs is not None and (warmup_cpgs < 1 or warmup_epochs < 1):
        msg = (
            f"`warmup_cpgs` and `warmup_epochs` must be positive (or `warmup_cpgs=None`), got {warmup_cpgs!r} and "
            f"{warmup_epochs!r}."
        )
        raise ValueError(msg)
    if mvc_weight < 0:
        msg = f"`mvc_weight` must be non-negative, got {mvc_weight!r}."
        raise ValueError(msg)
    if not 0 < val_size < 1:
        msg = f"`val_size` must be in (0, 1), got {val_size!r}."
        raise ValueError(msg)
    if resume is not None and not Path(resume).is_file():
        msg = f"`resume` checkpoint {resume} does not exist."
        raise FileNotFoundError(msg)
    data, path = _open(adata)
    if model is None:
        probes = data.var[var_key].astype(str) if var_key else data.var_names
        check_unique(pd.Index(probes), what="CpG IDs")
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
            torch.manual_seed(random_state)
            model = MethylGPT(
                MethylGPTVocab.from_probes(sorted(probes)),
                d_model=d_model,
                n_layers=n_layers,
                n_heads=n_heads,
                dropout=dropout,
            )
    check_model(model, batch_size)
    inputs = prepare_inputs(data, model, layer=layer, var_key=var_key)
    usable = np.flatnonzero(inputs.n_observed > 0)  # all-missing samples (reported by prepare_inputs) teach nothing
    n_val = round(val_size * len(usable))
    if n_val < 1 or len(usable) - n_val < 1:
        msg = f"{len(usable)} samples with observed CpGs: too few for a training and a validation set (val_size={val_size})."
        raise ValueError(msg)
    order = as_generator(random_state).permutation(usable)
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
    matrix = None if path is not None else data.X if layer is None else data.layers[layer]
    rows = {
        name: BetaRows(r, inputs.in_data, matrix=matrix, path=path, layer=layer)
        for name, r in (("train", train_rows), ("val", val_rows))
    }
    cpg_ids = torch.as_tensor(np.asarray(model.vocab.probe_ids)[inputs.in_vocab])
    warmup_columns = None if warmup_cpgs is None else torch.as_tensor(_most_variable(inputs, train_rows, warmup_cpgs))
    module = PretrainModule(
        model,
        cpg_ids,
        train=rows["train"],
        val=rows["val"],
        mask_ratio=mask_ratio,
        lr=lr,
        lr_gamma=lr_gamma,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=random_state,
        cpgs_per_step=cpgs_per_step,
        adam_eps=adam_eps,
        warmup_columns=warmup_columns,
        warmup_epochs=warmup_epochs,
        mvc_weight=mvc_weight,
    )
    history = HistoryCallback()
    callbacks: list[L.Callback] = [history]
    if ckpt_dir is not None:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="{epoch}", every_n_epochs=1, save_top_k=-1, save_last=True)
        )
    model.train()
    with quiet_lightning():
        trainer = make_trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            precision=precision,
            gradient_clip_val=1.0,
            use_distributed_sampler=False,  # the module shards the samples itself, seeded per epoch
            enable_checkpointing=ckpt_dir is not None,
            progress=progress,
            callbacks=callbacks,
        )
        trainer.fit(module, ckpt_path=None if resume is None else str(resume))
    model.cpu().eval()
    model.history = pd.DataFrame(history.rows)
    if isinstance(adata, AnnData) and not adata.isbacked:
        params = provenance(
            model,
            inputs,
            mask_ratio=mask_ratio,
            mvc_weight=mvc_weight,
            cpgs_per_step=cpgs_per_step,
            warmup_cpgs=warmup_cpgs,
            warmup_epochs=warmup_epochs,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            lr_gamma=lr_gamma,
            adam_eps=adam_eps,
            val_size=val_size,
            random_state=random_state,
            n_train=len(train_rows),
            n_val=len(val_rows),
            world_size=trainer.world_size,
        )
        record_params(adata, Key.uns.pretrain, params, history=model.history)
    return model
