"""Pretraining MethylGPT with Lightning: masked value modelling (the MLM head, and MVC as an option), a fresh mask every batch."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from epiformer._lightning import L, fit, warmup_cosine
from epiformer._logging import warn
from epiformer._utils import read_columns, split_rows
from epiformer._validation import check_unique
from epiformer.models.methylgpt._engine import ModelInputs, check_methylgpt, prepare_inputs, provenance
from epiformer.models.methylgpt._module import MethylGPT
from epiformer.models.methylgpt._vocab import MethylGPTVocab

#: Sample passes of a default run (scvi-tools' epoch heuristic: 400 epochs of 20,000 samples), and its cap.
DEFAULT_SAMPLE_PASSES, MAX_DEFAULT_EPOCHS = 8_000_000, 400
#: Most CpGs a subset is drawn from by weight (``torch.multinomial``'s limit on its categories).
MAX_WEIGHTED_CPGS = 2**24
#: Checkpoint key of the options a run was trained with, compared when it is resumed.
RUN_OPTIONS_KEY = "epiformer_pretrain_options"


def default_epochs(n_train: int) -> int:
    """Epochs of a run given neither an epoch count nor a time budget.

    400 up to 20,000 training samples, fewer above (as scvi-tools' models choose), so a small cohort gets steps
    enough and a large one no more passes than it needs.
    """
    return max(1, min(MAX_DEFAULT_EPOCHS, round(DEFAULT_SAMPLE_PASSES / n_train)))


def seed_of(*parts: int) -> int:
    """A 63-bit seed mixing integers (seed, epoch, batch, rank, ...), stable across runs and processes."""
    words = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(words.view(np.uint64)[0]) >> 1


def random_cpgs(
    betas: Tensor, cpg_ids: Tensor, n: int | None, generator: torch.Generator, *, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """`n` random columns of `betas` (in input order) and their CpG ids, drawn from `generator` without replacement.

    Each column equally likely, or in proportion to `weights` (one per column, on the CPU). All of them when `n`
    is `None` or not fewer than the columns.
    """
    if n is None or n >= betas.shape[1]:
        return betas, cpg_ids
    if weights is None:
        columns = torch.randperm(betas.shape[1], generator=generator)[:n]
    else:
        columns = torch.multinomial(weights, n, replacement=False, generator=generator)
    columns = columns.sort().values.to(betas.device)
    return betas[:, columns], cpg_ids[columns]


class BetaRows(Dataset):
    """Rows of betas over the model's CpGs, from memory or read lazily from a backed ``.h5ad`` file.

    Parameters
    ----------
    rows
        Sample positions in the data that this dataset serves.
    columns
        Data columns of the model's CpGs (in the model's input order).
    matrix
        In-memory matrix (dense or sparse), or `None` to read `path`.
    path, layer
        A ``.h5ad`` file opened in backed mode on first use, in each worker process (so each worker and each
        rank reads only the rows its sampler gives it), and the layer to read (`None`: ``X``).
    """

    def __init__(self, rows: np.ndarray, columns: np.ndarray, *, matrix=None, path: Path | None = None, layer=None):
        self.rows, self.columns, self.matrix, self.path, self.layer = rows, columns, matrix, path, layer

    def __len__(self) -> int:
        return len(self.rows)

    def _source(self):
        if self.matrix is None:
            import anndata as ad

            from epiformer._utils import get_matrix

            self.matrix = get_matrix(ad.read_h5ad(self.path, backed="r"), self.layer)
        return self.matrix

    def __getitem__(self, item: int) -> Tensor:
        row = int(self.rows[item])
        return torch.from_numpy(read_columns(self._source()[row : row + 1], self.columns)[0])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["matrix"] = None  # workers open the file themselves
        return state


class PretrainModule(L.LightningModule):
    """Lightning wrapper of :class:`MethylGPT` for masked value modelling, as the authors pretrain.

    In each batch, `mask_ratio` of every sample's observed CpGs are masked (value -1); the loss is the MSE of the
    MLM head plus `mvc_weight` times the MSE of the MVC head (values rebuilt from the ``<cls>`` embedding), both at
    the masked positions (published weight: 1; at 0 the MVC head is neither run nor trained). Masks are drawn from
    a generator seeded by (seed, epoch, batch, rank), and the global RNG (dropout) is seeded the same way before
    each batch, so a resumed run repeats an uninterrupted one exactly. During the first `warmup_epochs` epochs,
    training batches cover only the input columns `warmup_columns`; after that, with `cpgs_per_step`, each
    training batch covers a random subset of that many CpGs (drawn from the same generator). Validation always
    covers every CpG. `cpg_weights` (one per input column, or `None` for equal chances) make a CpG's chance of
    being drawn into a subset proportional to its weight. `run_options` (the options that decide the run) are saved
    with every checkpoint, and a resumed run given other options is warned with their names. Adam (epsilon `adam_eps`); `lr_schedule` ``"cosine"``: a warm-up over the first `lr_warmup`
    of the run and a cosine decay fitted to the run's length or time budget (:func:`epiformer._lightning.warmup_cosine`),
    ``"step"`` (published): ``StepLR(1 epoch, gamma=lr_gamma)``.
    """

    def __init__(
        self,
        model: MethylGPT,
        cpg_ids: Tensor,
        *,
        train: BetaRows,
        val: BetaRows,
        mask_ratio: float,
        lr: float,
        lr_schedule: str,
        lr_warmup: float,
        lr_gamma: float,
        batch_size: int,
        num_workers: int,
        seed: int,
        cpgs_per_step: int | None,
        cpg_weights: Tensor | None,
        adam_eps: float,
        warmup_columns: Tensor | None,
        warmup_epochs: int,
        mvc_weight: float,
        run_options: dict[str, Any],
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("cpg_ids", cpg_ids, persistent=False)
        self.train_rows, self.val_rows = train, val
        self.mask_ratio, self.lr, self.lr_gamma, self.batch_size = mask_ratio, lr, lr_gamma, batch_size
        self.lr_schedule, self.lr_warmup = lr_schedule, lr_warmup
        self.num_workers, self.seed, self.cpgs_per_step = num_workers, seed, cpgs_per_step
        self.cpg_weights = cpg_weights  # on the CPU, with the generators that draw the subsets
        self.adam_eps, self.warmup_epochs, self.mvc_weight = adam_eps, warmup_epochs, mvc_weight
        self.register_buffer("warmup_columns", warmup_columns, persistent=False)
        # plain Python values, which torch's restricted unpickler reads back from a checkpoint (NumPy scalars it refuses)
        self.run_options = {k: v.item() if isinstance(v, np.generic) else v for k, v in run_options.items()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_OPTIONS_KEY] = self.run_options

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(RUN_OPTIONS_KEY)
        if saved is None:
            warn(
                "The checkpoint resumed does not record its training options (it was written by an earlier "
                "epiformer): the run continues with the options given now, which may differ from its own "
                "(mvc_weight and cpg_sampling changed defaults).",
                UserWarning,
            )
            return
        changed = sorted(k for k in self.run_options.keys() | saved.keys() if saved.get(k) != self.run_options.get(k))
        if changed:
            listed = ", ".join(f"{k} {saved.get(k)!r} -> {self.run_options.get(k)!r}" for k in changed)
            warn(
                f"Resuming with {len(changed)} options other than the checkpoint's run ({listed}): the run does not "
                "continue the one that was saved. Pass the same options to continue it exactly.",
                UserWarning,
            )

    def setup(self, stage: str) -> None:
        # heads that take no part (the classification head; the MVC head at weight 0) are frozen while training,
        # so that DDP finds no unused parameters (set before the strategy wraps the model)
        unused = [self.model.cls_decoder] + ([self.model.mvc_decoder] if self.mvc_weight == 0 else [])
        self._frozen = [(p, p.requires_grad) for head in unused for p in head.parameters()]
        for p, _ in self._frozen:
            p.requires_grad_(False)

    def teardown(self, stage: str) -> None:
        for p, flag in self._frozen:
            p.requires_grad_(flag)

    # ------------------------------------------------------------------------------------------------- data

    def _loader(self, rows: BetaRows, *, shuffle: bool) -> DataLoader:
        sampler = DistributedSampler(
            rows,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            shuffle=shuffle,
            seed=self.seed,
        )
        return DataLoader(
            rows,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_rows, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_rows, shuffle=False)

    # ------------------------------------------------------------------------------------------------- loss

    def draw_mask(self, observed: Tensor, generator: torch.Generator) -> Tensor:
        """`True` for the masked CpGs: each observed CpG independently with probability `mask_ratio`."""
        draws = torch.rand(observed.shape, generator=generator, device="cpu").to(observed.device)
        return observed & (draws < self.mask_ratio)

    def masked_loss(self, betas: Tensor, mask: Tensor, cpg_ids: Tensor) -> Tensor:
        """MLM + `mvc_weight` x MVC mean squared errors at the masked positions of `betas` (columns `cpg_ids`)."""
        model = self.model
        ids, values, kpm = model.tokenize(betas.masked_fill(mask, model.mask_value), cpg_ids=cpg_ids)
        out = model(ids, values, key_padding_mask=kpm, mvc=self.mvc_weight != 0)
        if not mask.any():  # nothing masked in this batch (tiny batches): a zero loss that keeps the graph
            return out["mlm_output"].sum() * 0.0
        target = betas[mask]
        mlm = torch.nn.functional.mse_loss(out["mlm_output"][:, 1:][mask].float(), target)
        if self.mvc_weight == 0:
            return mlm
        return mlm + self.mvc_weight * torch.nn.functional.mse_loss(out["mvc_output"][:, 1:][mask].float(), target)

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        torch.manual_seed(seed_of(self.seed, 1, self.current_epoch, batch_idx, self.global_rank))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        generator = torch.Generator().manual_seed(
            seed_of(self.seed, 2, self.current_epoch, batch_idx, self.global_rank)
        )
        cpg_ids = self.cpg_ids
        if self.warmup_columns is not None and self.current_epoch < self.warmup_epochs:
            batch, cpg_ids = batch[:, self.warmup_columns], cpg_ids[self.warmup_columns]
        else:
            batch, cpg_ids = random_cpgs(batch, cpg_ids, self.cpgs_per_step, generator, weights=self.cpg_weights)
        loss = self.masked_loss(batch, self.draw_mask(~torch.isnan(batch), generator), cpg_ids)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch), sync_dist=True)
        return loss

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(seed_of(self.seed, 3, batch_idx, self.global_rank))  # same each epoch
        loss = self.masked_loss(batch, self.draw_mask(~torch.isnan(batch), generator), self.cpg_ids)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch), sync_dist=True)

    def configure_optimizers(self):
        # Python floats: the optimiser's state goes into checkpoints, which a resume reads back without NumPy types
        optimizer = torch.optim.Adam(self.model.parameters(), lr=float(self.lr), eps=float(self.adam_eps))
        if self.lr_schedule == "cosine":
            return warmup_cosine(self, optimizer, warmup=float(self.lr_warmup))
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=float(self.lr_gamma))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def open_data(data: AnnData | str | PathLike) -> tuple[AnnData, Path | None]:
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


def column_sd(inputs: ModelInputs, rows: np.ndarray) -> np.ndarray:
    """Standard deviation of each input column over `rows`, read in chunks (NaN where never observed there)."""
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
        return np.sqrt(np.maximum(square / count - np.square(total / count), 0.0))


def most_variable(sd: np.ndarray, n: int) -> np.ndarray:
    """Input columns (sorted) of the `n` largest standard deviations `sd`, columns of NaN last."""
    return np.sort(np.argsort(-np.nan_to_num(sd, nan=-1.0), kind="stable")[:n])


def sd_weights(sd: np.ndarray) -> Tensor:
    """Chances of the input columns in a CpG subset: their sd, at least a tenth of the mean sd (NaN counted as 0).

    The floor keeps every CpG drawable, a constant one (or one never observed) too; uniform when nothing varies.
    """
    sd = np.nan_to_num(sd, nan=0.0)
    floor = 0.1 * sd.mean()
    return torch.as_tensor(np.maximum(sd, floor) if floor > 0 else np.ones(len(sd)), dtype=torch.float64)


def new_model(
    data: AnnData, *, var_key: str | None, d_model: int, n_layers: int, n_heads: int, dropout: float, random_state: int
) -> MethylGPT:
    """A MethylGPT over the data's CpGs (sorted), its initial weights seeded by `random_state`."""
    probes = data.var[var_key].astype(str) if var_key else data.var_names
    check_unique(pd.Index(probes), what="CpG IDs")
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
        torch.manual_seed(random_state)
        return MethylGPT(
            MethylGPTVocab.from_probes(sorted(probes)),
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            dropout=dropout,
        )


def pretrain(
    data: AnnData,
    model: MethylGPT,
    *,
    path: Path | None,
    layer: str | None,
    var_key: str | None,
    batch_size: int,
    val_size: float,
    random_state: int,
    warmup_cpgs: int | None,
    cpg_sampling: str,
    num_workers: int,
    ckpt_dir: str | PathLike | None,
    resume: str | PathLike | None,
    module_options: dict[str, Any],
    max_epochs: int | None,
    max_time: float | None,
    **fit_options: Any,
) -> dict[str, Any]:
    """Masked value modelling of `model` (in place) on the rows of `data` (read from `path` when backed).

    `max_epochs` `None`: until `max_time` is spent when it is given, else :func:`default_epochs`. Returns the
    provenance of the run (checkpoint, coverage, split sizes, world size); `model.history` is set.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    check_methylgpt(model, batch_size)
    inputs = prepare_inputs(data, model, layer=layer, var_key=var_key)
    usable = np.flatnonzero(inputs.n_observed > 0)  # all-missing samples (reported by prepare_inputs) teach nothing
    train_rows, val_rows = split_rows(usable, val_size=val_size, random_state=random_state)
    if len(val_rows) < 1 or len(train_rows) < 1:
        msg = f"{len(usable)} samples with observed CpGs: too few for a training and a validation set (val_size={val_size})."
        raise ValueError(msg)
    matrix = None if path is not None else data.X if layer is None else data.layers[layer]
    rows = {
        name: BetaRows(r, inputs.in_data, matrix=matrix, path=path, layer=layer)
        for name, r in (("train", train_rows), ("val", val_rows))
    }
    if max_epochs is None:
        max_epochs = -1 if max_time is not None else default_epochs(len(train_rows))
    n_cpgs, per_step = len(inputs.in_data), module_options["cpgs_per_step"]
    by_sd = cpg_sampling == "sd" and per_step is not None and per_step < n_cpgs
    if by_sd and n_cpgs > MAX_WEIGHTED_CPGS:
        msg = (
            f"`cpg_sampling='sd'` draws subsets from at most {MAX_WEIGHTED_CPGS:,} CpGs and the model sees {n_cpgs:,} "
            "in the data; pass `cpg_sampling='uniform'`."
        )
        raise ValueError(msg)
    sd = column_sd(inputs, train_rows) if warmup_cpgs is not None or by_sd else None
    warmup = None if warmup_cpgs is None else torch.as_tensor(most_variable(sd, warmup_cpgs))
    run_options = {
        **module_options,
        "warmup_cpgs": warmup_cpgs,
        "cpg_sampling": cpg_sampling,
        "batch_size": batch_size,
        "val_size": val_size,
        "random_state": random_state,
    }
    module = PretrainModule(
        model,
        inputs.cpg_ids(model),
        train=rows["train"],
        val=rows["val"],
        batch_size=batch_size,
        num_workers=num_workers,
        seed=random_state,
        warmup_columns=warmup,
        cpg_weights=sd_weights(sd) if by_sd else None,
        run_options=run_options,
        **module_options,
    )
    callbacks = []
    if ckpt_dir is not None:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="{epoch}", every_n_epochs=1, save_top_k=-1, save_last=True)
        )
    model.train()
    model.history = fit(
        module,
        random_state=None,  # masks, shuffling and dropout are seeded per batch by the module
        callbacks=callbacks,
        ckpt_path=None if resume is None else str(resume),
        gradient_clip_val=1.0,
        use_distributed_sampler=False,  # the module shards the samples itself, seeded per epoch
        max_epochs=max_epochs,
        max_time=max_time,
        **fit_options,
    )
    return provenance(
        model,
        inputs,
        **run_options,
        n_train=len(train_rows),
        n_val=len(val_rows),
        max_epochs=max_epochs,
        world_size=module.trainer.world_size,
    )
