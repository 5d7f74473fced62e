"""Training EpiGePT with Lightning: masked MSE over (window, context) pairs, as the hg38 release trains."""

from __future__ import annotations

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import Dataset

from epiformer._sequence import one_hot
from epiformer.models.epigept._module import EpiGePT


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(mask * (pred - target)^2) / sum(mask)``: the authors' loss; unmeasured signals do not count.

    Targets under a zero mask may be NaN.
    """
    mask = mask.to(pred.dtype)
    return (mask * (pred - torch.nan_to_num(target)).square()).sum() / (mask.sum() + 1e-8)


class WindowContextDataset(Dataset):
    """(window, context) training pairs: one-hot sequence, TF features input, targets and their mask.

    Parameters
    ----------
    codes
        Base codes of each window ``(n_windows, window_bp)``.
    motifs
        Motif scores ``(n_windows, n_bins, n_tfs)``.
    contexts
        Context vectors ``(n_contexts, n_tfs)``.
    targets
        ``(n_contexts, n_windows, n_bins, n_signals)`` in ``log(count + 1)``, NaN where not measured.
    pairs
        ``(n_pairs, 2)`` window and context index of each item.
    """

    def __init__(
        self, codes: np.ndarray, motifs: np.ndarray, contexts: np.ndarray, targets: np.ndarray, pairs: np.ndarray
    ) -> None:
        self.codes, self.motifs, self.contexts, self.targets, self.pairs = codes, motifs, contexts, targets, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, ...]:
        w, c = self.pairs[item]
        seq = torch.from_numpy(one_hot(self.codes[w]).T.copy())
        features = torch.from_numpy(self.motifs[w] * self.contexts[c][None, :])
        target = torch.from_numpy(self.targets[c, w])
        mask = ~torch.isnan(target)
        return seq, features, torch.nan_to_num(target), mask


class EpiGePTModule(L.LightningModule):
    """Lightning wrapper of :class:`EpiGePT`: masked MSE, Adam (learning rate 5e-5 as published).

    Parameters
    ----------
    model
        The network to train (updated in place).
    lr
        Adam learning rate.
    """

    def __init__(self, model: EpiGePT, *, lr: float = 5e-5) -> None:
        super().__init__()
        self.model = model
        self.lr = lr

    def forward(self, seq: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.model(seq, features)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        seq, features, target, mask = batch
        return masked_mse(self.model(seq, features), target, mask)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)
