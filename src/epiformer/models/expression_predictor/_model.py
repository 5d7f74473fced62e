"""The expression predictor: a model bound to paired expression + methylation for training, predicting from expression alone."""

from __future__ import annotations

import inspect
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from torch import nn

from epiformer._annotations import check_distances, check_sequences, pair_split
from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._utils import get_matrix, progress_bar, renamed_options, resolve_device, select_modality, to_dense_float
from epiformer._validation import check_choice
from epiformer.models._base import history_frame, load_folder, on_device, save_folder
from epiformer.models.expression_predictor._data import BlockBatches, CpGTable, ExpressionScaler, PairBatches
from epiformer.models.expression_predictor._networks import (
    FactorizedNet,
    LevyJurgensonNet,
    init_output_bias,
    n_parameters,
)

Architecture = Literal["factorized", "levy_jurgenson"]
ARCHITECTURES = ("factorized", "levy_jurgenson")
NETWORKS: dict[str, type[nn.Module]] = {"factorized": FactorizedNet, "levy_jurgenson": LevyJurgensonNet}
DEFAULT_LR = {"factorized": 3e-3, "levy_jurgenson": 1e-3}
FORMAT = "epiformer.ExpressionPredictor"


def network_options(architecture: str | None = None) -> set[str]:
    """Keyword options of the network of `architecture` (of both networks when `None`)."""
    names = ARCHITECTURES if architecture is None else (architecture,)
    return {
        p.name
        for name in names
        for p in inspect.signature(NETWORKS[name].__init__).parameters.values()
        if p.kind == p.KEYWORD_ONLY
    }


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


#: scvi-tools-style attribute names of the earlier version -> today's names.
_RENAMED_ATTRIBUTES = {
    "config_": "config",
    "genes_": "genes",
    "cpgs_": "cpgs",
    "cpg_chrom_": "cpg_chrom",
    "cpg_pos_": "cpg_pos",
    "scaler_": "scaler",
    "is_trained_": "is_trained",
}


class ExpressionPredictor:
    """Predict the beta value of (CpG, sample) pairs from sequence, expression and CpG-gene distances.

    Built from a :class:`~mudata.MuData` of samples with an expression and a methylation modality, after
    :func:`epiformer.pp.cpg_sequences` and :func:`epiformer.pp.cpg_gene_distances` (and
    :func:`epiformer.pp.split_pairs` before :meth:`train`). It keeps its CpGs' sequences and gene
    neighbourhoods, so once trained (or loaded) it predicts from expression alone: samples, cells or spots.
    Most users call :func:`epiformer.tl.fit_expression_predictor` instead.

    Parameters
    ----------
    mdata
        Paired samples (the training data).
    rna_mod
        Expression modality.
    methyl_mod
        Methylation modality.
    rna_layer
        Layer of log expression (`None` = `.X`).
    methyl_layer
        Layer of beta values (`None` = `.X`; NaN = missing).
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

    Attributes
    ----------
    genes, cpgs
        The model's genes (input order) and CpGs (names).
    cpg_chrom, cpg_pos
        Coordinates of the CpGs.
    network
        The :class:`torch.nn.Module`.
    scaler
        The expression scaling (`None` before training).
    history
        One row per training epoch: ``epoch``, ``train_loss``, ``val_loss`` (masked MAE).
    checkpoint
        Where a loaded model came from (`path`, `sha256`); empty for a model trained in this session.
    mdata
        The training data (`None` for a loaded model).
    """

    def __init__(
        self,
        mdata: Any,
        *,
        rna_mod: str = Key.mod.rna,
        methyl_mod: str = Key.mod.methyl,
        rna_layer: str | None = None,
        methyl_layer: str | None = None,
        architecture: Architecture = "factorized",
        scaling: Literal["minmax", "standard"] | None = None,
        n_neighbors: int = 16,
        seq_key: str = Key.varm.seq_codes,
        dist_key: str = Key.varm.gene_dist,
        random_state: int = 0,
        **network_kwargs: Any,
    ) -> None:
        check_choice(architecture, ARCHITECTURES, name="architecture")
        if isinstance(mdata, AnnData) or not hasattr(mdata, "mod"):
            msg = (
                "ExpressionPredictor trains on a MuData with an expression and a methylation modality, got "
                f"{type(mdata).__name__}; build one with `mudata.MuData({{'rna': rna, 'methyl': methyl}})`."
            )
            raise TypeError(msg)
        check_choice(scaling, ("minmax", "standard", None), name="scaling")
        unknown = set(network_kwargs) - network_options(architecture)
        if unknown:
            msg = f"Unknown options {sorted(unknown)} of the {architecture!r} network; it takes {sorted(network_options(architecture))}."
            raise TypeError(msg)
        rna = select_modality(mdata, rna_mod, default=Key.mod.rna)
        methyl = select_modality(mdata, methyl_mod, default=Key.mod.methyl)
        get_matrix(rna, rna_layer), get_matrix(methyl, methyl_layer)  # clear errors for absent layers
        genes = [str(g) for g in rna.var_names]
        seq = check_sequences(methyl, seq_key)
        dist, dist_genes, encoding = check_distances(methyl, dist_key)
        if dist_genes != genes:
            position = {g: i for i, g in enumerate(dist_genes)}
            if any(g not in position for g in genes):
                msg = f"`varm[{dist_key!r}]` was computed for other genes; re-run `ef.pp.cpg_gene_distances(mdata)`."
                raise ValueError(msg)
            dist = dist[:, [position[g] for g in genes]]
        self.config = {
            "architecture": architecture,
            "scaling": scaling or ("minmax" if architecture == "levy_jurgenson" else "standard"),
            "n_neighbors": int(n_neighbors),
            "encoding": encoding,
            "seq_len": int(seq.shape[1]),
            "network": _json_safe(network_kwargs),
            "random_state": int(random_state),
        }
        self.rna_mod, self.methyl_mod, self.rna_layer, self.methyl_layer = rna_mod, methyl_mod, rna_layer, methyl_layer
        self.genes = genes
        self.cpgs = [str(c) for c in methyl.var_names]
        self.cpg_chrom = [str(c) for c in methyl.var[Key.var.chrom]]
        self.cpg_pos = [int(p) for p in methyl.var[Key.var.pos]]
        self.table = CpGTable(seq, dist, encoding, architecture, n_neighbors)
        self.network = self._build_network()
        self.scaler: ExpressionScaler | None = None
        self.history = history_frame(None)
        self.train_params: dict[str, Any] = {}
        self.checkpoint: dict[str, str] = {}
        self.mdata = mdata

    def _build_network(self) -> nn.Module:
        cfg = self.config
        with torch.random.fork_rng():
            torch.manual_seed(cfg["random_state"])
            return NETWORKS[cfg["architecture"]](len(self.genes), cfg["seq_len"], **cfg["network"])

    @property
    def architecture(self) -> str:
        """``"factorized"`` or ``"levy_jurgenson"``."""
        return self.config["architecture"]

    @property
    def is_trained(self) -> bool:
        """Whether the model was trained (or loaded) and can predict."""
        return self.scaler is not None

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the network."""
        return n_parameters(self.network)

    def __getattr__(self, name: str) -> Any:
        if name in _RENAMED_ATTRIBUTES:  # the scvi-tools-style names, for one release
            new = _RENAMED_ATTRIBUTES[name]
            warn(f"`ExpressionPredictor.{name}` is renamed `.{new}`; the old name will be removed.", FutureWarning)
            return getattr(self, new)
        msg = f"{type(self).__name__!r} object has no attribute {name!r}"
        raise AttributeError(msg)

    def __repr__(self) -> str:
        state = "trained" if self.is_trained else "not trained"
        return (
            f"ExpressionPredictor ({self.architecture}, {state}): {len(self.genes)} genes, {len(self.cpgs)} CpGs, "
            f"{self.config['seq_len']} bp windows, {self.n_parameters:,} parameters"
        )

    @renamed_options(enable_progress_bar="progress")
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
        early_stopping_patience: int | None = 5,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        precision: str = "32-true",
        random_state: int | None = 0,
        progress: bool = True,
        max_time: float | None = None,
        **trainer_options: Any,
    ) -> None:
        """Train on training CpGs x training samples, validating on validation CpGs x validation samples.

        Expression scaling is fit on the training samples only. Missing betas are masked out of the loss
        (MAE, as published). ``levy_jurgenson`` trains on random pairs, `batch_size` at a time, as published;
        ``factorized`` on blocks of `cpg_batch` CpGs x `sample_batch` samples. Training ends with the weights
        of the best validation epoch, and sets :attr:`history` to this run's epochs.

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
            CpGs per block (``factorized`` training; validation for both).
        sample_batch
            Samples per block.
        split_key
            Column of `obs` and of the CpG `var` written by :func:`epiformer.pp.split_pairs`.
        early_stopping_patience
            Stop after this many epochs without a lower ``val_loss``; `None` never stops early.
        accelerator
            Lightning accelerator (``"auto"``, ``"cpu"``, ``"gpu"`` ...).
        devices
            Lightning devices.
        random_state
            Seed of the batch order and of everything else random in training.
        progress
            Show a progress bar.
        max_time
            Wall-clock budget in seconds; `None` for none.
        precision
            Lightning precision (the network trains in 32-bit by default, on any device).
        **trainer_options
            Passed to :func:`lightning.pytorch.Trainer` (e.g. ``strategy``, ``num_nodes``, ``limit_train_batches``).
        """
        from torch.utils.data import DataLoader

        from epiformer._lightning import fit
        from epiformer.models.expression_predictor._training import PredictorTraining

        if self.mdata is None:
            msg = "This model was loaded without its training data; build a new one from a MuData to train."
            raise RuntimeError(msg)
        sample_split, cpg_split = pair_split(self.mdata, split_key=split_key, mod=self.methyl_mod)
        train_s, val_s = np.flatnonzero(sample_split == "train"), np.flatnonzero(sample_split == "val")
        train_c, val_c = np.flatnonzero(cpg_split == "train"), np.flatnonzero(cpg_split == "val")
        if not len(train_s) or not len(train_c):
            msg = "No training samples or CpGs: check `ef.pp.split_pairs`."
            raise ValueError(msg)
        rna, methyl = self.mdata.mod[self.rna_mod], self.mdata.mod[self.methyl_mod]
        rows = pd.Index(rna.obs_names).get_indexer(methyl.obs_names)
        if (rows < 0).any():
            msg = "Some methylation samples have no expression; keep the samples both modalities share."
            raise ValueError(msg)
        expr = to_dense_float(get_matrix(rna, self.rna_layer))[rows]
        betas = to_dense_float(get_matrix(methyl, self.methyl_layer))
        if np.isnan(expr).any():
            msg = "The expression matrix has NaN values; impute or drop them first."
            raise ValueError(msg)
        train_betas = betas[np.ix_(train_s, train_c)]
        if np.isnan(train_betas).all():
            msg = "Every training beta is missing."
            raise ValueError(msg)
        scaler = ExpressionScaler.fit(expr[train_s], self.config["scaling"])
        scaled = scaler.transform(expr)
        if not self.is_trained:
            init_output_bias(self.network, float(np.nanmean(train_betas)))
        seed = 0 if random_state is None else random_state
        if self.architecture == "levy_jurgenson":
            train = PairBatches(self.table, scaled, betas, train_c, train_s, batch_size=batch_size, seed=seed)
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
                seed=seed,
            )
        val = None
        if len(val_s) and len(val_c):
            val = BlockBatches(
                self.table, scaled, betas, val_c, val_s, cpg_batch=cpg_batch, sample_batch=sample_batch, shuffle=False
            )
        elif early_stopping_patience is not None:
            warn("No validation samples or CpGs: early stopping is off.", UserWarning)
        lr = lr or DEFAULT_LR[self.architecture]
        history = fit(
            PredictorTraining(self.network, lr=lr, weight_decay=weight_decay),
            train=DataLoader(train, batch_size=None),
            val=DataLoader(val, batch_size=None) if val is not None else None,
            max_epochs=max_epochs,
            random_state=random_state,
            progress=progress,
            accelerator=accelerator,
            devices=devices,
            early_stopping_patience=early_stopping_patience if val is not None else None,
            restore_best=True,
            max_time=max_time,
            precision=precision,
            **trainer_options,
        )
        self.scaler = scaler
        self.history = history_frame(history)
        self.train_params = {
            "max_epochs": max_epochs,
            "lr": lr,
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "cpg_batch": cpg_batch,
            "sample_batch": sample_batch,
            "early_stopping_patience": early_stopping_patience,
            "random_state": random_state,
            "n_epochs": len(history),
        }

    def predict(
        self,
        expression: np.ndarray,
        *,
        present: np.ndarray | None = None,
        cpgs: np.ndarray | None = None,
        cpg_batch: int = 256,
        sample_batch: int = 256,
        device: str = "auto",
        progress: bool = False,
    ) -> np.ndarray:
        """Predicted betas ``(n_samples, n_cpgs)`` for new expression profiles.

        Parameters
        ----------
        expression
            Log expression ``(n_samples, n_genes)`` in the model's gene order (:attr:`genes`), on the scale of
            the training data.
        present
            Boolean mask of the genes the data really has; the others are set to 0 after scaling.
        cpgs
            Positions of the CpGs to predict in the model's CpG table (:attr:`cpgs`); all when `None`.
        cpg_batch
            CpGs per block.
        sample_batch
            Samples per block.
        device
            Where to compute (``"auto"``: CUDA, then MPS, then the CPU); the weights return where they were.
        progress
            Show a progress bar over the blocks.

        Returns
        -------
        Float32 betas (the linear output of ``levy_jurgenson`` is clipped to [0, 1]).
        """
        if self.scaler is None:
            msg = "The model is not trained; call `.train()` first."
            raise RuntimeError(msg)
        expression = np.asarray(expression, dtype=np.float32)
        if expression.ndim != 2 or expression.shape[1] != len(self.genes):
            msg = f"`expression` must be (n_samples, {len(self.genes)}) in the model's gene order."
            raise ValueError(msg)
        cpgs = np.arange(len(self.cpgs)) if cpgs is None else np.asarray(cpgs)
        scaled = self.scaler.transform(expression, present)
        blocks = BlockBatches(
            self.table, scaled, None, cpgs, np.arange(len(scaled)), cpg_batch=cpg_batch, sample_batch=sample_batch
        )
        out = np.empty((len(scaled), len(cpgs)), dtype=np.float32)
        n_sample_blocks = -(-len(scaled) // sample_batch)
        with (
            on_device(self.network, device) as target,
            progress_bar(blocks, desc="methylation prediction", unit="block", disable=not progress) as bar,
        ):
            for i, batch in enumerate(bar):
                c, s = divmod(i, n_sample_blocks)
                pred = self.network.forward_block(**{k: v.to(target) for k, v in batch.items()})
                out[
                    s * sample_batch : s * sample_batch + pred.shape[0], c * cpg_batch : c * cpg_batch + pred.shape[1]
                ] = pred.clamp(0, 1).float().cpu().numpy()
        return out

    @renamed_options(dir_path="directory")
    def save(self, directory: str | PathLike, *, overwrite: bool = False) -> Path:
        """Write the model to a folder: ``model.safetensors`` (weights, scaler, CpG tables) and ``config.json``.

        Nothing is pickled, so loading never runs code from the file. The configuration records the
        settings, the genes and CpGs, the training history and the sha256 of the weights.

        Parameters
        ----------
        directory
            Folder to write (created).
        overwrite
            Replace the files of a folder that is not empty.

        Returns
        -------
        The folder written.
        """
        if self.scaler is None:
            msg = "The model is not trained; there is nothing to save."
            raise RuntimeError(msg)
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        tensors["scaler.shift"] = torch.as_tensor(self.scaler.shift)
        tensors["scaler.scale"] = torch.as_tensor(self.scaler.scale)
        tensors.update(self.table.state())
        config = {
            "config": self.config,
            "data": {
                "rna_mod": self.rna_mod,
                "methyl_mod": self.methyl_mod,
                "rna_layer": self.rna_layer,
                "methyl_layer": self.methyl_layer,
            },
            "training": _json_safe(self.train_params),
            "scaler": {"kind": self.scaler.kind, "feature_range": list(self.scaler.feature_range)},
            "genes": self.genes,
            "cpgs": self.cpgs,
            "cpg_chrom": self.cpg_chrom,
            "cpg_pos": self.cpg_pos,
        }
        return save_folder(
            directory, format=FORMAT, config=config, tensors=tensors, history=self.history, overwrite=overwrite
        )

    @classmethod
    @renamed_options(dir_path="directory")
    def load(cls, directory: str | PathLike, *, device: str = "cpu") -> ExpressionPredictor:
        """Read a model written by :meth:`save` (its weights are checked against the recorded sha256).

        Parameters
        ----------
        directory
            Folder written by :meth:`save`.
        device
            Where to put the weights.

        Returns
        -------
        The trained model, in evaluation mode, without training data (:attr:`mdata` is `None`).
        """
        saved, state, source = load_folder(directory, format=FORMAT)
        data = saved.get("data")
        if data is None:  # written by epiformer <= 0.x, when the model was an scvi-tools model
            setup = saved.get("registry", {}).get("setup_args", {})
            modalities = setup.get("modalities", {})
            data = {
                "rna_mod": modalities.get("rna_layer", Key.mod.rna),
                "methyl_mod": modalities.get("methyl_layer", Key.mod.methyl),
                "rna_layer": setup.get("rna_layer"),
                "methyl_layer": setup.get("methyl_layer"),
            }
        model = cls.__new__(cls)
        model.config = saved["config"]
        model.rna_mod, model.methyl_mod = data["rna_mod"], data["methyl_mod"]
        model.rna_layer, model.methyl_layer = data["rna_layer"], data["methyl_layer"]
        model.genes, model.cpgs = saved["genes"], saved["cpgs"]
        model.cpg_chrom, model.cpg_pos = saved["cpg_chrom"], saved["cpg_pos"]
        model.scaler = ExpressionScaler(
            saved["scaler"]["kind"],
            state["scaler.shift"].numpy(),
            state["scaler.scale"].numpy(),
            tuple(saved["scaler"]["feature_range"]),
        )
        model.table = CpGTable.from_state(state, model.architecture)
        model.network = model._build_network()
        model.network.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        model.network.to(resolve_device(device)).eval()
        model.history = history_frame(saved.get("history"))
        model.train_params = saved.get("training", {})
        model.checkpoint = source
        model.mdata = None
        return model
