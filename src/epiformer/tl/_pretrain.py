"""`ef.tl.pretrain`: MethylGPT's masked value modelling on a cohort, in memory or streamed from a backed file."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_params, doc_random_state
from epiformer._logging import timed
from epiformer._utils import record_params
from epiformer._validation import check_choice

if TYPE_CHECKING:
    from epiformer.models import MethylGPT


@doc_params(layer=doc_layer, random_state=doc_random_state)
def pretrain(
    adata: AnnData | str | PathLike,
    model: MethylGPT | None = None,
    *,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    dropout: float = 0.0,
    layer: str | None = None,
    var_key: str | None = None,
    mask_ratio: float = 0.3,
    mvc_weight: float = 0.0,
    cpgs_per_step: int | None = 200,
    cpg_sampling: Literal["sd", "uniform"] = "sd",
    warmup_cpgs: int | None = None,
    warmup_epochs: int = 15,
    max_epochs: int | None = None,
    batch_size: int = 32,
    lr: float = 3e-3,
    lr_schedule: Literal["cosine", "step"] = "cosine",
    lr_warmup: float = 0.05,
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
    max_time: float | None = None,
    random_state: int = 0,
    progress: bool = True,
) -> MethylGPT:
    """Pretrain MethylGPT by masked value modelling, on one CPU, one GPU or many GPUs and nodes.

    As published: in every sample, `mask_ratio` of the observed CpGs are masked (value -1) and predicted by the MLM
    head, and by the MVC head from the ``<cls>`` embedding when `mvc_weight` is set (MSE at the masked positions,
    the second weighted by `mvc_weight`); missing CpGs are not attended. Unlike the authors' code, the mask is drawn
    afresh for every batch (theirs reseeds to 42 on every call); masks, shuffling and dropout are seeded by
    (`random_state`, epoch, batch, rank), so a run is reproducible and `resume` continues exactly. Adam (learning
    rate `lr`, epsilon `adam_eps`), gradient clipping at 1.0, bf16 mixed precision on CUDA.

    The training procedure differs from the published one where that learns more per minute on a cohort (each option
    gives the published setting back): each step reads a random subset of `cpgs_per_step` CpGs, the variable ones
    more often (published: all), only the MLM head is trained (published: MVC too), the learning rate peaks at 3e-3
    (published: 1e-3) after a warm-up and then follows a cosine decay fitted to the run, to `max_epochs` or to the
    `max_time` budget, whichever ends it (published: ``lr * lr_gamma ** epoch``), and a new model is smaller than
    the authors' (see `n_layers`).

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
        CpGs with `d_model`, `n_layers`, `n_heads` and `dropout`, its initial weights seeded by `random_state`.
    d_model, n_layers, n_heads, dropout
        Shape of a new model: by default the published layers at width 64 with 4 heads, two of them and no
        dropout, which learns a cohort of hundreds of samples in minutes on a CPU (the authors' "tiny" model,
        for ~150,000 samples, is 64, 6, 4 and 0.1; dropout also costs CPU time, having no fused CPU kernel).
    {layer}
    var_key
        `var` column holding the probe IDs, if not `var_names`.
    mask_ratio
        Fraction of the observed CpGs masked in each sample.
    mvc_weight
        Weight of the MVC head's loss (published: 1). At 0 only the MLM head, the one that imputes, is trained:
        the MVC loss slows the learning of how CpGs inform each other.
    cpgs_per_step
        Train each step on a random subset of this many CpGs, drawn afresh for every batch (the model has no
        positional encoding, so a subset is a valid input, as in scGPT's gene sampling); the validation loss
        always covers every CpG. Attention costs the square of the sequence length, so on a large panel this
        makes a step many times cheaper. `None` (published): every CpG in every step.
    cpg_sampling
        How a step's subset is drawn: ``"sd"``, each CpG with a chance proportional to its standard deviation
        over the training samples (at least a tenth of the mean, so that no CpG goes untrained), so that the
        CpGs that vary together (a cell type's, a sex's, an age's markers) meet in the same steps often enough to
        be learnt from each other; ``"uniform"``, every CpG alike. No effect where a step reads every CpG
        (`cpgs_per_step` `None` or not fewer than the CpGs) nor in the `warmup_epochs`.
    warmup_cpgs, warmup_epochs
        Train the first `warmup_epochs` epochs on only the `warmup_cpgs` CpGs with the largest standard deviation
        over the training samples, then on all of them (`None`, published: no warm-up).
    max_epochs
        Longest run; `None`: until `max_time` is spent when it is given, else scvi-tools' heuristic: 400 epochs
        up to 20,000 training samples, ``8e6 / n_train`` above.
    batch_size, lr
        Samples per step and per device, and the peak Adam learning rate (published: 32 and 1e-3).
    lr_schedule, lr_warmup
        ``"cosine"``: a linear warm-up from 1 % of `lr` over the first `lr_warmup` of the run, then a cosine decay
        to 1 % of `lr` at its end (the run's share done is the larger of its epochs and its `max_time` spent, so
        a budgeted run ends its schedule with its budget); ``"step"`` (published): `lr` times `lr_gamma` after
        every epoch.
    lr_gamma
        The step schedule's factor (published: 0.9, for a few epochs over ~150,000 samples).
    adam_eps
        Adam's epsilon (the authors used 1e-4, a setting for fp16 mixed precision).
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
    max_time
        Wall-clock budget in seconds; training stops when it is spent.
    progress
        Show Lightning's progress bar.

    Returns
    -------
    The trained model (on the device it started on, in evaluation mode) with `model.history`, a DataFrame of `epoch`, `train_loss`
    and `val_loss` (plot it with :func:`epiformer.pl.training_history`). When `adata` is an in-memory AnnData,
    `uns['methylgpt_pretrain']` records the settings and the history.
    """
    if not 0 < mask_ratio < 1:
        msg = f"`mask_ratio` must be in (0, 1), got {mask_ratio!r}."
        raise ValueError(msg)
    check_choice(lr_schedule, ("cosine", "step"), name="lr_schedule")
    check_choice(cpg_sampling, ("sd", "uniform"), name="cpg_sampling")
    if not 0 <= lr_warmup < 1:
        msg = f"`lr_warmup` must be in [0, 1), got {lr_warmup!r}."
        raise ValueError(msg)
    if max_epochs is not None and max_epochs < 1:
        msg = f"`max_epochs` must be a positive number of epochs or None, got {max_epochs!r}."
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
    from epiformer.models import methylgpt

    with timed("ef.tl.pretrain") as written:
        data, path = methylgpt.open_data(adata)
        if model is None:
            model = methylgpt.new_model(
                data,
                var_key=var_key,
                d_model=d_model,
                n_layers=n_layers,
                n_heads=n_heads,
                dropout=dropout,
                random_state=random_state,
            )
        params = methylgpt.pretrain(
            data,
            model,
            path=path,
            layer=layer,
            var_key=var_key,
            batch_size=batch_size,
            val_size=val_size,
            random_state=random_state,
            warmup_cpgs=warmup_cpgs,
            cpg_sampling=cpg_sampling,
            num_workers=num_workers,
            ckpt_dir=ckpt_dir,
            resume=resume,
            module_options={
                "mask_ratio": mask_ratio,
                "lr": lr,
                "lr_schedule": lr_schedule,
                "lr_warmup": lr_warmup,
                "lr_gamma": lr_gamma,
                "cpgs_per_step": cpgs_per_step,
                "adam_eps": adam_eps,
                "warmup_epochs": warmup_epochs,
                "mvc_weight": mvc_weight,
            },
            max_epochs=max_epochs,
            max_time=max_time,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            precision=precision,
            progress=progress,
        )
        if isinstance(adata, AnnData) and not adata.isbacked:
            record_params(adata, Key.uns.pretrain, params, history=model.history)
            written.append(f"uns[{Key.uns.pretrain!r}]")
    return model
