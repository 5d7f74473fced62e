"""Pretraining MethylGPT with Lightning: masked value modelling (MLM + MVC heads) with a fresh mask every batch."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from epiformer._utils import read_columns
from epiformer.models.methylgpt._module import MethylGPT


def seed_of(*parts: int) -> int:
    """A 63-bit seed mixing integers (seed, epoch, batch, rank, ...), stable across runs and processes."""
    return int(
        np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1
    )


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
    covers every CpG. Adam (epsilon `adam_eps`) with ``StepLR(1 epoch, gamma=lr_gamma)`` (published: 0.9).
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
        lr_gamma: float,
        batch_size: int,
        num_workers: int,
        seed: int,
        cpgs_per_step: int | None,
        adam_eps: float,
        warmup_columns: Tensor | None,
        warmup_epochs: int,
        mvc_weight: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("cpg_ids", cpg_ids, persistent=False)
        self.train_rows, self.val_rows = train, val
        self.mask_ratio, self.lr, self.lr_gamma, self.batch_size = mask_ratio, lr, lr_gamma, batch_size
        self.num_workers, self.seed, self.cpgs_per_step = num_workers, seed, cpgs_per_step
        self.adam_eps, self.warmup_epochs, self.mvc_weight = adam_eps, warmup_epochs, mvc_weight
        self.register_buffer("warmup_columns", warmup_columns, persistent=False)

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
        elif self.cpgs_per_step is not None and self.cpgs_per_step < batch.shape[1]:
            columns = torch.randperm(batch.shape[1], generator=generator)[: self.cpgs_per_step].sort().values
            columns = columns.to(batch.device)
            batch, cpg_ids = batch[:, columns], cpg_ids[columns]
        loss = self.masked_loss(batch, self.draw_mask(~torch.isnan(batch), generator), cpg_ids)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch), sync_dist=True)
        return loss

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(seed_of(self.seed, 3, batch_idx, self.global_rank))  # same each epoch
        loss = self.masked_loss(batch, self.draw_mask(~torch.isnan(batch), generator), self.cpg_ids)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch), sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, eps=self.adam_eps)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=self.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
