"""The Lightning module that trains an expression predictor's network: masked MAE, Adam."""

from __future__ import annotations

import torch
from torch import nn

from epiformer._lightning import L


def masked_mae(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean absolute error over the observed targets (NaN = missing), and their number."""
    observed = ~torch.isnan(target)
    n = int(observed.sum())
    err = (pred - torch.nan_to_num(target)).abs() * observed
    return err.sum() / max(n, 1), n


class PredictorTraining(L.LightningModule):
    """Trains `network` on (CpG, sample) batches; logs ``train_loss`` and ``val_loss`` (masked MAE) per epoch.

    Parameters
    ----------
    network
        A :class:`~epiformer.models.expression_predictor.FactorizedNet` or
        :class:`~epiformer.models.expression_predictor.LevyJurgensonNet`.
    lr
        Adam learning rate.
    weight_decay
        Adam weight decay.
    """

    def __init__(self, network: nn.Module, *, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.network = network
        self.lr, self.weight_decay = lr, weight_decay

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        target = batch["beta"]
        if target.dim() == 1:  # pairs: the published per-pair computation
            pred = self.network(batch["seq"], batch["expr"], batch["dist"])
        else:
            pred = self.network.forward_block(**{k: v for k, v in batch.items() if k != "beta"})
        return masked_mae(pred, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step on the masked MAE."""
        loss, n = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=max(n, 1), prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Validation MAE, averaged over all the validation pairs of the epoch."""
        loss, n = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=max(n, 1), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, as published."""
        return torch.optim.Adam(self.network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
