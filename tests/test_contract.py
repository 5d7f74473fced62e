"""One public contract for every tool, checked once by a shared helper (as scanpy's test helpers check `layer=`/`copy=`).

Every `ef.tl` function takes the data first and the model second, every other option keyword-only, and uses the
same option names. Every tool that writes into the data honours `copy=` for AnnData and MuData alike, writes where
`key_added` says, reads `layer=`, takes `mod=`, and leaves the input untouched when it fails.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab

TOOLS = {name: getattr(ef.tl, name) for name in ef.tl.__all__ if inspect.isfunction(getattr(ef.tl, name))}
DATA_NAMES = {"adata", "data", "mdata", "contexts", "tracks"}
MODEL_NAMES = {"model", "predictor"}
#: One name per option across the package; the left-hand names must not appear.
RENAMED = {
    "enable_progress_bar": "progress",
    "validation_fraction": "val_size",
    "validation_size": "val_size",
    "seed": "random_state",
    "verbose": "progress",
    "show_progress": "progress",
}
#: Tools that run a network or train one: they take `progress=`.
LONG = {
    "attention",
    "dilution_curve",
    "embed",
    "finetune",
    "fit_epigept",
    "fit_expression_predictor",
    "impute",
    "predict_epigenome",
    "pretrain",
    "variant_effect",
}


def _parameters(func: Callable) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values() if p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_signature(name):
    """Data first, then the model (if any), every option keyword-only, with the package's option names."""
    params = _parameters(TOOLS[name])
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert positional and positional[0].name in DATA_NAMES, f"ef.tl.{name}: the data must come first"
    assert positional[0].default is inspect.Parameter.empty, f"ef.tl.{name}: the data is required"
    assert len(positional) <= 2, f"ef.tl.{name}: only the data and the model are positional"
    if len(positional) == 2:
        assert positional[1].name in MODEL_NAMES, f"ef.tl.{name}: the second argument must be the model"
    names = {p.name for p in params}
    for old, new in RENAMED.items():
        assert old not in names, f"ef.tl.{name}: use `{new}=`, not `{old}=`"
    if name in LONG:
        assert "progress" in names, f"ef.tl.{name}: long calls take `progress=`"
    if "copy" in names:
        assert "key_added" in names, f"ef.tl.{name}: a tool that writes names its output with `key_added=`"
    annotation = str(inspect.signature(TOOLS[name]).parameters[positional[0].name].annotation)
    if "MuData" in annotation and "AnnData" in annotation:
        assert "mod" in names, f"ef.tl.{name}: AnnData-or-MuData tools take `mod=`"
        assert "layer" in names or name not in WRITERS, f"ef.tl.{name}: reads `layer=`"


# ---------------------------------------------------------------------------------------------- writers


def _snapshot(data: AnnData | md.MuData) -> Any:
    """What a caller could see change: matrices, annotations and the keys of every mapping."""
    if isinstance(data, md.MuData):
        return {name: _snapshot(mod) for name, mod in data.mod.items()} | {"uns": sorted(data.uns)}
    return {
        "X": np.array(data.X, copy=True),
        "obs": data.obs.copy(),
        "var": data.var.copy(),
        "keys": {slot: sorted(getattr(data, slot)) for slot in ("obsm", "varm", "layers", "uns")},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    return a == b


@dataclass
class Writer:
    """A tool that writes into its input, with what it needs and where its output lands."""

    call: Callable[..., Any]
    args: tuple = ()
    options: dict = field(default_factory=dict)
    slot: str = "obsm"
    """Mapping (`obsm`, `layers`, `varm`, `obs`) that receives `key_added`."""
    key: str = "out"


PROBES = [f"cg{i:08d}" for i in range(30)]


def _cohort() -> AnnData:
    X = np.random.default_rng(0).uniform(0, 1, (12, 30)).astype(np.float32)
    X[0, 3] = X[4, 7] = X[9, 1] = np.nan
    adata = AnnData(X=X, obs=pd.DataFrame(index=[f"s{i}" for i in range(12)]), var=pd.DataFrame(index=PROBES))
    adata.obs["age"] = np.linspace(20, 80, 12)
    adata.obs["tissue"] = pd.Categorical(["blood", "brain"] * 6)
    adata.layers["betas"] = adata.X.copy()
    return adata


def _methylgpt() -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(PROBES), d_model=16, n_layers=1, n_heads=2, dropout=0.0).eval()


def _baseline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ef.tl.fit_baseline(_cohort(), target="age")


MODEL = _methylgpt()
QUIET = {"progress": False, "device": "cpu"}
WRITERS = {
    "embed": Writer(ef.tl.embed, (MODEL,), QUIET, "obsm"),
    "impute": Writer(ef.tl.impute, (MODEL,), QUIET, "layers"),
    "attention": Writer(ef.tl.attention, (MODEL,), QUIET, "varm"),
    "predict": Writer(ef.tl.predict, (_baseline(),), {}, "obs"),
}


def test_every_writing_tool_is_checked():
    writers = {name for name, func in TOOLS.items() if "copy" in inspect.signature(func).parameters}
    expression = {"predict_methylation", "dilution_curve"}  # need a trained expression predictor: checked below
    assert writers - expression == set(WRITERS)


def check_writer(writer: Writer, make: Callable[[], AnnData | md.MuData], *, mod: str | None = None) -> None:
    """The contract of a tool that writes: `copy`, `key_added`, `layer`, `mod`, and no change on failure."""
    options = {**writer.options, "key_added": writer.key, "layer": "betas"}
    if mod is not None:
        options["mod"] = mod

    def target(data):
        return data.mod[mod] if isinstance(data, md.MuData) else data

    data = make()
    before = _snapshot(data)
    out = writer.call(data, *writer.args, copy=True, **options)
    assert out is not None and out is not data and type(out) is type(data)
    assert writer.key in getattr(target(out), writer.slot)
    assert _same(_snapshot(data), before), "copy=True changed the input"

    assert writer.call(data, *writer.args, **options) is None
    assert writer.key in getattr(target(data), writer.slot)
    assert np.array_equal(
        np.asarray(getattr(target(data), writer.slot)[writer.key]),
        np.asarray(getattr(target(out), writer.slot)[writer.key]),
        equal_nan=True,
    ), "in place and copy=True wrote different results"

    fresh = make()
    before = _snapshot(fresh)
    with pytest.raises(KeyError, match="no_such_layer"):
        writer.call(fresh, *writer.args, **{**options, "layer": "no_such_layer"})
    assert _same(_snapshot(fresh), before), "a failed call changed the input"


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writer_on_anndata(name):
    check_writer(WRITERS[name], _cohort)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writer_on_mudata(name):
    def make() -> md.MuData:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            rna = AnnData(np.ones((12, 2), dtype=np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(12)]))
            return md.MuData({"methyl": _cohort(), "rna": rna})

    check_writer(WRITERS[name], make, mod="methyl")


def test_tools_log_what_ran_and_what_they_wrote(caplog):
    adata = _cohort()
    with caplog.at_level("INFO", logger="epiformer"):
        ef.tl.embed(adata, MODEL, key_added="X_test", **QUIET)
    messages = [r.getMessage() for r in caplog.records if r.name == "epiformer"]
    assert messages[0] == "ef.tl.embed: running"
    assert messages[-1].startswith("ef.tl.embed: finished in ") and "obsm['X_test']" in messages[-1]


def test_renamed_options_still_work_for_one_release():
    from epiformer._utils import renamed_options

    @renamed_options(old_name="new_name")
    def tool(data, *, new_name=1):
        return new_name

    with pytest.warns(FutureWarning, match="`old_name=` is renamed `new_name=`"):
        assert tool(None, old_name=5) == 5
    with pytest.raises(TypeError, match="pass only `new_name=`"):
        tool(None, old_name=5, new_name=6)
    assert list(inspect.signature(tool).parameters) == ["data", "new_name"]


def test_moved_names_still_import_for_one_release():
    with pytest.warns(FutureWarning, match="moved to `ef.models.MethylGPTPredictor`"):
        assert ef.tl.MethylGPTPredictor is ef.models.MethylGPTPredictor
    with pytest.warns(FutureWarning, match="moved to `ef.models.Predictor`"):
        assert ef.tl.Predictor is ef.models.Predictor


def test_warnings_point_at_the_callers_line():
    adata = _cohort()
    adata.obs.loc["s0", "age"] = np.nan
    with pytest.warns(UserWarning, match="1 of 12 samples have no 'age' value") as record:
        ef.tl.fit_baseline(adata, target="age")
    assert record[0].filename == __file__
