"""The scvi-tools model class of the expression predictor: setup, train (Lightning), predict, save, load."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from mudata import MuData
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass
from torch import nn

from epiformer._annotations import check_distances, check_sequences, pair_split
from epiformer._constants import Key
from epiformer._utils import package_version, to_dense_float
from epiformer.models.expression_predictor._data import (
    BlockBatches,
    CpGTable,
    ExpressionScaler,
    PairBatches,
    PairDataModule,
)
from epiformer.models.expression_predictor._networks import (
    FactorizedNet,
    LevyJurgensonNet,
    init_output_bias,
    n_parameters,
)

Architecture = Literal["factorized", "levy_jurgenson"]
ARCHITECTURES = ("factorized", "levy_jurgenson")
DEFAULT_LR = {"factorized": 3e-3, "levy_jurgenson": 1e-3}
_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"
_REGISTRY_X = "X"
_REGISTRY_METHYL = "methyl"


class PredictorModule(nn.Module):
    """The network as scvi-tools' `model.module` (a module that knows its device)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device


def _masked_mae(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean absolute error over observed targets (NaN = missing) and their number."""
    observed = ~torch.isnan(target)
    n = int(observed.sum())
    err = (pred - torch.nan_to_num(target)).abs() * observed
    return err.sum() / max(n, 1), n


class TrainingPlan(pl.LightningModule):
    """Lightning module: masked MAE on training batches, `validation_loss` for early stopping, best weights kept."""

    def __init__(self, module: PredictorModule, *, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.module = module
        self.lr, self.weight_decay = lr, weight_decay
        self.best_loss = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        target = batch["beta"]
        if target.dim() == 1:  # pairs: the published per-pair computation
            pred = self.module.net(batch["seq"], batch["expr"], batch["dist"])
        else:
            inputs = {k: v for k, v in batch.items() if k != "beta"}
            pred = self.module.net.forward_block(**inputs)
        return _masked_mae(pred, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step."""
        loss, n = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=max(n, 1), prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Validation MAE, averaged over all validation pairs of the epoch."""
        loss, n = self._loss(batch)
        self.log("validation_loss", loss, on_step=False, on_epoch=True, batch_size=max(n, 1), prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        """Remember the weights of the best validation epoch."""
        current = self.trainer.callback_metrics.get("validation_loss")
        if current is not None and float(current) < self.best_loss and not self.trainer.sanity_checking:
            self.best_loss = float(current)
            self.best_state = copy.deepcopy(self.module.state_dict())

    def on_train_end(self) -> None:
        """Restore the best validation weights."""
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, as published."""
        return torch.optim.Adam(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _registry_from_json(registry: dict) -> dict:
    for field in registry.get("field_registries", {}).values():
        state = field.get("state_registry", {})
        if "column_names" in state:
            state["column_names"] = np.asarray(state["column_names"], dtype=object)
    return registry


class ExpressionPredictor(BaseModelClass):
    """Predict the beta value of (CpG, sample) pairs from sequence, expression and CpG-gene distances.

    An scvi-tools model bound to a :class:`~mudata.MuData` of samples with an expression modality and a
    methylation modality. Set the data up with :meth:`setup_mudata` after :func:`epiformer.pp.cpg_sequences`,
    :func:`epiformer.pp.cpg_gene_distances` and :func:`epiformer.pp.split_pairs`; most users call
    :func:`epiformer.tl.fit_expression_predictor` instead.

    Parameters
    ----------
    mdata
        The MuData, registered with :meth:`setup_mudata`.
    architecture
        ``"factorized"`` (:class:`FactorizedNet`: attention over each CpG's nearest genes, CpG and sample
        parts computed once per block) or ``"levy_jurgenson"`` (:class:`LevyJurgensonNet`, the published
        per-pair network).
    scaling
        Expression scaling fit on the training samples: ``"minmax"`` to (10, 100) as published, or
        ``"standard"``; default ``minmax`` for ``levy_jurgenson`` and ``standard`` for ``factorized``.
    n_neighbors
        Genes attended per CpG (``factorized``): the nearest within the distance matrix's window.
    seq_key
        `varm` key of the sequence codes.
    dist_key
        `varm` key of the CpG-gene distances.
    random_state
        Seed of the weight initialisation.
    **network_kwargs
        Passed to the network (e.g. ``hidden``, ``n_heads``, ``filters``).
    """

    def __init__(
        self,
        mdata: MuData,
        *,
        architecture: Architecture = "factorized",
        scaling: Literal["minmax", "standard"] | None = None,
        n_neighbors: int = 16,
        seq_key: str = Key.varm.seq_codes,
        dist_key: str = Key.varm.gene_dist,
        random_state: int = 0,
        **network_kwargs: Any,
    ) -> None:
        if architecture not in ARCHITECTURES:
            msg = f"`architecture` must be one of {ARCHITECTURES}, got {architecture!r}."
            raise ValueError(msg)
        super().__init__(mdata)
        modalities = self.registry_["setup_args"]["modalities"]
        self._rna_mod, self._methyl_mod = modalities["rna_layer"], modalities["methyl_layer"]
        methyl = mdata.mod[self._methyl_mod]
        genes = [str(g) for g in mdata.mod[self._rna_mod].var_names]
        seq = check_sequences(methyl, seq_key)
        dist, dist_genes, encoding = check_distances(methyl, dist_key)
        if dist_genes != genes:
            position = {g: i for i, g in enumerate(dist_genes)}
            absent = [g for g in genes if g not in position]
            if absent:
                msg = f"`varm[{dist_key!r}]` was computed for other genes; re-run `ef.pp.cpg_gene_distances(mdata)`."
                raise ValueError(msg)
            dist = dist[:, [position[g] for g in genes]]
        self.config_ = {
            "architecture": architecture,
            "scaling": scaling or ("minmax" if architecture == "levy_jurgenson" else "standard"),
            "n_neighbors": int(n_neighbors),
            "encoding": encoding,
            "seq_len": int(seq.shape[1]),
            "network": _json_safe(network_kwargs),
            "random_state": int(random_state),
        }
        self.genes_ = genes
        self.cpgs_ = [str(c) for c in methyl.var_names]
        self.cpg_chrom_ = [str(c) for c in methyl.var[Key.var.chrom]]
        self.cpg_pos_ = [int(p) for p in methyl.var[Key.var.pos]]
        self.scaler_: ExpressionScaler | None = None
        self.table = CpGTable(seq, dist, encoding, architecture, n_neighbors)
        self.module = PredictorModule(self._build_network())
        self._model_summary_string = (
            f"ExpressionPredictor ({architecture}): {len(genes)} genes, {len(self.cpgs_)} CpGs, "
            f"{seq.shape[1]} bp windows, {n_parameters(self.module):,} parameters"
        )
        self.init_params_ = self._get_init_params(locals())

    def _build_network(self) -> nn.Module:
        cfg = self.config_
        with torch.random.fork_rng():
            torch.manual_seed(cfg["random_state"])
            if cfg["architecture"] == "levy_jurgenson":
                return LevyJurgensonNet(len(self.genes_), cfg["seq_len"], **cfg["network"])
            return FactorizedNet(len(self.genes_), cfg["seq_len"], **cfg["network"])

    @classmethod
    def setup_anndata(cls, adata, **kwargs) -> None:
        """Not supported: the model needs paired expression and methylation; use :meth:`setup_mudata`."""
        msg = "ExpressionPredictor needs a MuData with expression and methylation; use `setup_mudata`."
        raise NotImplementedError(msg)

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        methyl_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Register the expression and methylation matrices of a MuData with scvi-tools.

        Parameters
        ----------
        mdata
            Samples shared by both modalities.
        rna_layer
            Layer of log expression in the expression modality (`None` = `.X`).
        methyl_layer
            Layer of beta values in the methylation modality (`None` = `.X`; NaN = missing).
        modalities
            ``{"rna_layer": <expression modality>, "methyl_layer": <methylation modality>}``; default
            ``{"rna_layer": "rna", "methyl_layer": "methyl"}``.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        modalities = modalities or {"rna_layer": Key.mod.rna, "methyl_layer": Key.mod.methyl}
        setup_method_args = cls._get_setup_method_args(**locals())
        setup_method_args["setup_args"]["modalities"] = dict(modalities)
        mods = cls._create_modalities_attr_dict(modalities, setup_method_args)
        for name in (mods.rna_layer, mods.methyl_layer):
            if name not in mdata.mod:
                msg = f"Modality {name!r} not found in the MuData; available: {list(mdata.mod)}. Pass `modalities=`."
                raise KeyError(msg)
        mudata_fields = [
            fields.MuDataLayerField(
                _REGISTRY_X, rna_layer, mod_key=mods.rna_layer, is_count_data=False, mod_required=True
            ),
            fields.MuDataLayerField(
                _REGISTRY_METHYL, methyl_layer, mod_key=mods.methyl_layer, is_count_data=False, mod_required=True
            ),
        ]
        manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mudata's update() default is changing
            manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    @property
    def architecture(self) -> str:
        """``"factorized"`` or ``"levy_jurgenson"``."""
        return self.config_["architecture"]

    def train(
        self,
        *,
        max_epochs: int = 50,
        lr: float | None = None,
        weight_decay: float = 0.0,
        batch_size: int = 512,
        cpg_batch: int = 128,
        sample_batch: int = 64,
        split_key: str = Key.obs.split,
        early_stopping: bool = True,
        early_stopping_patience: int = 5,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        random_state: int = 0,
        enable_progress_bar: bool = True,
        **trainer_kwargs: Any,
    ) -> None:
        """Train on training CpGs x training samples, stopping early on validation CpGs x validation samples.

        Expression scaling is fit on the training samples only. Missing betas are masked out of the loss
        (MAE, as published). ``levy_jurgenson`` trains on random pairs, `batch_size` at a time, as published;
        ``factorized`` on blocks of `cpg_batch` CpGs x `sample_batch` samples. The weights of the best
        validation epoch are kept.

        Parameters
        ----------
        max_epochs
            Passes over the training pairs.
        lr
            Adam learning rate; default 3e-3 for ``factorized`` and 1e-3 for ``levy_jurgenson``.
        weight_decay
            Adam weight decay.
        batch_size
            Pairs per step (``levy_jurgenson``).
        cpg_batch
            CpGs per block (``factorized`` training; validation and prediction for both).
        sample_batch
            Samples per block.
        split_key
            Column of `obs` and of the CpG `var` written by :func:`epiformer.pp.split_pairs`.
        early_stopping
            Stop when `validation_loss` has not improved for `early_stopping_patience` epochs.
        early_stopping_patience
            Epochs without improvement before stopping.
        accelerator
            Lightning accelerator (``"auto"``, ``"cpu"``, ``"gpu"`` ...).
        devices
            Lightning devices.
        random_state
            Seed of the batch order.
        enable_progress_bar
            Show a progress bar.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (a :class:`lightning.pytorch.Trainer`), e.g. ``strategy``,
            ``num_nodes``, ``limit_train_batches``.
        """
        from scvi.train import TrainRunner

        sample_split, cpg_split = pair_split(self.adata, split_key=split_key, mod=self._methyl_mod)
        train_s, val_s = np.flatnonzero(sample_split == "train"), np.flatnonzero(sample_split == "val")
        train_c, val_c = np.flatnonzero(cpg_split == "train"), np.flatnonzero(cpg_split == "val")
        if not len(train_s) or not len(train_c):
            msg = "No training samples or CpGs: check `ef.pp.split_pairs`."
            raise ValueError(msg)
        expr = to_dense_float(self.adata_manager.get_from_registry(_REGISTRY_X))
        betas = to_dense_float(self.adata_manager.get_from_registry(_REGISTRY_METHYL))
        if np.isnan(expr).any():
            msg = "The expression matrix has NaN values; impute or drop them first."
            raise ValueError(msg)
        self.scaler_ = ExpressionScaler.fit(expr[train_s], self.config_["scaling"])
        scaled = self.scaler_.transform(expr)
        train_betas = betas[np.ix_(train_s, train_c)]
        if np.isnan(train_betas).all():
            msg = "Every training beta is missing."
            raise ValueError(msg)
        if not self.is_trained_:
            init_output_bias(self.module.net, float(np.nanmean(train_betas)))
        if self.architecture == "levy_jurgenson":
            train = PairBatches(self.table, scaled, betas, train_c, train_s, batch_size=batch_size, seed=random_state)
        else:
            train = BlockBatches(
                self.table,
                scaled,
                betas,
                train_c,
                train_s,
                cpg_batch=cpg_batch,
                sample_batch=sample_batch,
                shuffle=True,
                seed=random_state,
            )
        has_val = len(val_s) > 0 and len(val_c) > 0
        val = (
            BlockBatches(
                self.table, scaled, betas, val_c, val_s, cpg_batch=cpg_batch, sample_batch=sample_batch, shuffle=False
            )
            if has_val
            else None
        )
        if early_stopping and not has_val:
            warnings.warn("No validation samples or CpGs: early stopping is off.", UserWarning, stacklevel=2)
            early_stopping = False
        data = PairDataModule(train, val)
        data.train_idx, data.val_idx, data.test_idx = train_s, val_s, np.flatnonzero(sample_split == "test")
        self.lr_ = lr or DEFAULT_LR[self.architecture]
        plan = TrainingPlan(self.module, lr=self.lr_, weight_decay=weight_decay)
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1 if has_val else None)
        trainer_kwargs.setdefault("log_every_n_steps", 1)
        runner = TrainRunner(
            self,
            training_plan=plan,
            data_splitter=data,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            early_stopping_monitor="validation_loss",
            early_stopping_patience=early_stopping_patience,
            enable_progress_bar=enable_progress_bar,
            **trainer_kwargs,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined", category=UserWarning)
            runner()
        self.module.eval()

    @torch.no_grad()
    def predict(
        self,
        expression: np.ndarray,
        *,
        present: np.ndarray | None = None,
        cpgs: np.ndarray | None = None,
        cpg_batch: int = 256,
        sample_batch: int = 256,
    ) -> np.ndarray:
        """Predicted betas ``(n_samples, n_cpgs)`` for new expression profiles.

        Parameters
        ----------
        expression
            Log expression ``(n_samples, n_genes)`` in the model's gene order (:attr:`genes_`), on the scale of
            the training data.
        present
            Boolean mask of the genes the data really has; the others are set to 0 after scaling.
        cpgs
            Positions of the CpGs to predict in the model's CpG table (:attr:`cpgs_`); all when `None`.
        cpg_batch
            CpGs per block.
        sample_batch
            Samples per block.

        Returns
        -------
        Float32 betas (the linear output of ``levy_jurgenson`` is clipped to [0, 1]).
        """
        if self.scaler_ is None:
            msg = "The model is not trained; call `.train()` first."
            raise RuntimeError(msg)
        expression = np.asarray(expression, dtype=np.float32)
        if expression.ndim != 2 or expression.shape[1] != len(self.genes_):
            msg = f"`expression` must be (n_samples, {len(self.genes_)}) in the model's gene order."
            raise ValueError(msg)
        cpgs = np.arange(len(self.cpgs_)) if cpgs is None else np.asarray(cpgs)
        scaled = self.scaler_.transform(expression, present)
        blocks = BlockBatches(
            self.table, scaled, None, cpgs, np.arange(len(scaled)), cpg_batch=cpg_batch, sample_batch=sample_batch
        )
        net = self.module.net.eval()
        device = self.module.device
        out = np.empty((len(scaled), len(cpgs)), dtype=np.float32)
        for i, batch in enumerate(blocks):
            c, s = divmod(i, -(-len(scaled) // sample_batch))
            pred = net.forward_block(**{k: v.to(device) for k, v in batch.items()})
            out[s * sample_batch : s * sample_batch + pred.shape[0], c * cpg_batch : c * cpg_batch + pred.shape[1]] = (
                pred.clamp(0, 1).cpu().numpy()
            )
        return out

    def save(self, dir_path: str | Path, *, overwrite: bool = False) -> None:
        """Write the model to a folder: ``model.safetensors`` (weights, scaler, CpG tables) and ``config.json``.

        Nothing is pickled, so loading never runs code from the file.

        Parameters
        ----------
        dir_path
            Folder to write (created).
        overwrite
            Replace an existing folder's files.
        """
        from safetensors.torch import save_file

        folder = Path(dir_path)
        if folder.exists() and not overwrite:
            msg = f"{folder} already exists; pass `overwrite=True` or choose another folder."
            raise FileExistsError(msg)
        if self.scaler_ is None:
            msg = "The model is not trained; there is nothing to save."
            raise RuntimeError(msg)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.module.net.state_dict().items()}
        tensors["scaler.shift"] = torch.as_tensor(self.scaler_.shift)
        tensors["scaler.scale"] = torch.as_tensor(self.scaler_.scale)
        tensors.update({k: v.contiguous() for k, v in self.table.state().items()})
        save_file(tensors, str(folder / _WEIGHTS))
        config = {
            "format": "epiformer.ExpressionPredictor",
            "epiformer_version": package_version(),
            "config": self.config_,
            "scaler": {"kind": self.scaler_.kind, "feature_range": list(self.scaler_.feature_range)},
            "genes": self.genes_,
            "cpgs": self.cpgs_,
            "cpg_chrom": self.cpg_chrom_,
            "cpg_pos": self.cpg_pos_,
            "registry": _json_safe(self.registry_),
        }
        (folder / _CONFIG).write_text(json.dumps(config))

    @classmethod
    def load(cls, dir_path: str | Path, mdata: MuData | None = None, *, device: str = "cpu") -> ExpressionPredictor:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        mdata
            Optionally a MuData to bind the model to (same genes in the expression modality); the model
            predicts without one, from the tables it saved.
        device
            Where to put the weights.

        Returns
        -------
        The trained model, in evaluation mode.
        """
        from safetensors.torch import load_file

        folder = Path(dir_path)
        if not (folder / _CONFIG).is_file() or not (folder / _WEIGHTS).is_file():
            msg = f"{folder} does not hold a saved ExpressionPredictor ({_CONFIG} and {_WEIGHTS})."
            raise FileNotFoundError(msg)
        saved = json.loads((folder / _CONFIG).read_text())
        if saved.get("format") != "epiformer.ExpressionPredictor":
            msg = f"{folder / _CONFIG} was not written by ExpressionPredictor.save."
            raise ValueError(msg)
        registry = _registry_from_json(saved["registry"])
        model = cls.__new__(cls)
        if mdata is not None:
            cls.setup_mudata(mdata, **registry["setup_args"])
            BaseModelClass.__init__(model, mdata)
            rna = mdata.mod[registry["setup_args"]["modalities"]["rna_layer"]]
            if [str(g) for g in rna.var_names] != saved["genes"]:
                msg = "The MuData's expression modality does not have the model's genes (in order)."
                raise ValueError(msg)
        else:
            BaseModelClass.__init__(model, registry=registry)
        modalities = registry["setup_args"]["modalities"]
        model._rna_mod, model._methyl_mod = modalities["rna_layer"], modalities["methyl_layer"]
        model.config_ = saved["config"]
        model.genes_, model.cpgs_ = saved["genes"], saved["cpgs"]
        model.cpg_chrom_, model.cpg_pos_ = saved["cpg_chrom"], saved["cpg_pos"]
        state = load_file(str(folder / _WEIGHTS))
        model.scaler_ = ExpressionScaler(
            saved["scaler"]["kind"],
            state["scaler.shift"].numpy(),
            state["scaler.scale"].numpy(),
            tuple(saved["scaler"]["feature_range"]),
        )
        model.table = CpGTable.from_state(state, model.config_["architecture"])
        model.module = PredictorModule(model._build_network())
        model.module.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        model.module.to(device).eval()
        model.is_trained_ = True
        model._model_summary_string = (
            f"ExpressionPredictor ({model.architecture}): {len(model.genes_)} genes, {len(model.cpgs_)} CpGs, "
            f"{model.config_['seq_len']} bp windows, {n_parameters(model.module):,} parameters"
        )
        return model
