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
    "predict",
    "predict_epigenome",
    "predict_methylation",
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
        "keys": {slot: sorted(getattr(data, slot), key=str) for slot in ("obsm", "varm", "layers", "uns")},
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
    """A tool that writes into its input: how to call it, what data it takes, and where its output lands."""

    call: Callable[..., Any]
    make: Callable[[], AnnData | md.MuData]
    args: tuple = ()
    options: dict = field(default_factory=dict)
    slot: str = "obsm"
    """Mapping (`obsm`, `layers`, `varm`, `obs`, `uns`) that receives `key_added`."""
    receiver: str | None = None
    """The MuData modality written into (`None`: the object itself)."""
    key: str = "out"


PROBES = [f"cg{i:08d}" for i in range(30)]
SAMPLES = [f"s{i}" for i in range(12)]


def _cohort() -> AnnData:
    X = np.random.default_rng(0).uniform(0, 1, (12, 30)).astype(np.float32)
    X[0, 3] = X[4, 7] = X[9, 1] = np.nan
    adata = AnnData(X=X, obs=pd.DataFrame(index=SAMPLES), var=pd.DataFrame(index=PROBES))
    adata.obs["age"] = np.linspace(20, 80, 12)
    adata.obs["tissue"] = pd.Categorical(["blood", "brain"] * 6)
    adata.layers["input"] = adata.X.copy()
    return adata


def _cohort_mudata() -> md.MuData:
    rna = AnnData(np.ones((12, 2), dtype=np.float32), obs=pd.DataFrame(index=SAMPLES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return md.MuData({"methyl": _cohort(), "rna": rna})


def _methylgpt() -> MethylGPT:
    torch.manual_seed(0)
    return MethylGPT(MethylGPTVocab.from_probes(PROBES), d_model=16, n_layers=1, n_heads=2, dropout=0.0).eval()


def _baseline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ef.tl.fit_baseline(_cohort(), target="age")


def _multiome() -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata = ef.datasets.synthetic_multiome(24, 12, 60, random_state=0)
        ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
        ef.pp.cpg_gene_distances(mdata)
        ef.pp.split_pairs(mdata, random_state=0)
    mdata.mod["rna"].layers["input"] = mdata.mod["rna"].X.copy()
    return mdata


MULTIOME = _multiome()


def _multiome_copy() -> md.MuData:
    return MULTIOME.copy()


def _spots() -> AnnData:
    return MULTIOME.mod["rna"].copy()


def _expression_predictor():
    torch.manual_seed(0)
    return ef.tl.fit_expression_predictor(MULTIOME.copy(), max_epochs=1, progress=False, accelerator="cpu")


MODEL = _methylgpt()
PREDICTOR = _expression_predictor()
QUIET = {"progress": False, "device": "cpu"}
DILUTION = {**QUIET, "retention": (50,), "n_iter": 1, "method": "legacy", "split": None}
WRITERS = {
    "embed": [
        Writer(ef.tl.embed, _cohort, (MODEL,), QUIET, "obsm"),
        Writer(ef.tl.embed, _cohort_mudata, (MODEL,), {**QUIET, "mod": "methyl"}, "obsm", "methyl"),
    ],
    "impute": [
        Writer(ef.tl.impute, _cohort, (MODEL,), QUIET, "layers"),
        Writer(ef.tl.impute, _cohort_mudata, (MODEL,), {**QUIET, "mod": "methyl"}, "layers", "methyl"),
    ],
    "attention": [
        Writer(ef.tl.attention, _cohort, (MODEL,), QUIET, "varm"),
        Writer(ef.tl.attention, _cohort_mudata, (MODEL,), {**QUIET, "mod": "methyl"}, "varm", "methyl"),
    ],
    "predict": [
        Writer(ef.tl.predict, _cohort, (_baseline(),), {"progress": False}, "obs"),
        Writer(ef.tl.predict, _cohort_mudata, (_baseline(),), {"progress": False, "mod": "methyl"}, "obs", "methyl"),
    ],
    "predict_methylation": [
        Writer(ef.tl.predict_methylation, _spots, (PREDICTOR,), QUIET, "obsm"),
        Writer(ef.tl.predict_methylation, _multiome_copy, (PREDICTOR,), {**QUIET, "mod": "rna"}, "layers", "methyl"),
    ],
    "dilution_curve": [Writer(ef.tl.dilution_curve, _multiome_copy, (PREDICTOR,), DILUTION, "uns")],
}
CASES = [(name, i) for name, writers in WRITERS.items() for i in range(len(writers))]


def test_every_writing_tool_is_checked():
    writers = {name for name, func in TOOLS.items() if "copy" in inspect.signature(func).parameters}
    assert writers == set(WRITERS)


def _receiver(data: AnnData | md.MuData, writer: Writer) -> AnnData | md.MuData:
    return data.mod[writer.receiver] if writer.receiver is not None else data


def check_writer(writer: Writer) -> None:
    """The contract of a tool that writes: `copy`, `key_added`, `layer`, `mod`, and no change on failure."""
    options = {**writer.options, "key_added": writer.key, "layer": "input"}
    data = writer.make()
    before = _snapshot(data)
    out = writer.call(data, *writer.args, copy=True, **options)
    assert out is not None and out is not data and type(out) is type(data)
    assert writer.key in getattr(_receiver(out, writer), writer.slot)
    assert _same(_snapshot(data), before), "copy=True changed the input"

    assert writer.call(data, *writer.args, **options) is None
    written = getattr(_receiver(data, writer), writer.slot)[writer.key]
    assert _same(_comparable(written), _comparable(getattr(_receiver(out, writer), writer.slot)[writer.key])), (
        "in place and copy=True wrote different results"
    )

    fresh = writer.make()
    before = _snapshot(fresh)
    with pytest.raises(KeyError, match="no_such_layer"):
        writer.call(fresh, *writer.args, **{**options, "layer": "no_such_layer"})
    assert _same(_snapshot(fresh), before), "a failed call changed the input"


def _comparable(value: Any) -> Any:
    """A written value in a form `_same` compares: arrays for matrices and frames, the tables of a `uns` entry."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "params"}
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.to_numpy()
    if hasattr(value, "shape"):
        return np.asarray(value)
    return value


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_writer(name, i):
    check_writer(WRITERS[name][i])


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


# ------------------------------------------------------------------------------- tools that return something


def _epigept_inputs():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from epigept_published import small_config

    tfs = tuple(f"T{i}" for i in range(7))
    torch.manual_seed(0)
    model = ef.models.EpiGePT(small_config(tf_names=tfs)).eval()
    contexts = AnnData(np.ones((2, 7), dtype=np.float32), var=pd.DataFrame(index=list(tfs)))
    return model, contexts


def _epigenome_prediction() -> AnnData:
    from epiformer._sequence import bin_frame

    X = np.arange(8, dtype=np.float32).reshape(2, 4)
    pred = AnnData(X, obs=pd.DataFrame(index=["a", "b"]), var=bin_frame("22", 156_250, 4, 128))
    pred.layers["DNase"] = X.copy()
    return pred


EPIGEPT, CONTEXTS = _epigept_inputs()
SEGMENT = ef.datasets.hg19_chr22_segment()
#: name -> (make the data, call that must fail on it, the error).
FAILING = {
    "pretrain": (_cohort, lambda d: ef.tl.pretrain(d, layer="no_such_layer", progress=False), KeyError),
    "finetune": (_cohort, lambda d: ef.tl.finetune(d, MODEL, target="age", layer="no_such_layer"), KeyError),
    "fit_baseline": (_cohort, lambda d: ef.tl.fit_baseline(d, target="age", layer="no_such_layer"), KeyError),
    "evaluate": (_cohort, lambda d: ef.tl.evaluate(d, truth="age", pred="no_such_column", split=None), ValueError),
    "fit_expression_predictor": (
        _multiome_copy,
        lambda d: ef.tl.fit_expression_predictor(d, rna_layer="no_such_layer", progress=False),
        KeyError,
    ),
    "evaluate_methylation": (_multiome_copy, lambda d: ef.tl.evaluate_methylation(d, layer="no_such_layer"), KeyError),
    "predict_epigenome": (
        lambda: CONTEXTS.copy(),
        lambda d: ef.tl.predict_epigenome(d, EPIGEPT, regions="22:20300001-20300000", fasta=SEGMENT, progress=False),
        ValueError,
    ),
    "variant_effect": (
        lambda: CONTEXTS.copy(),
        lambda d: ef.tl.variant_effect(d, EPIGEPT, variants=pd.DataFrame({"chrom": ["22"]}), fasta=SEGMENT),
        ValueError,
    ),
    "fit_epigept": (
        lambda: CONTEXTS.copy(),
        lambda d: ef.tl.fit_epigept(AnnData(np.zeros((2, 1))), EPIGEPT, contexts=d, fasta=SEGMENT, progress=False),
        ValueError,
    ),
    "evaluate_epigenome": (
        _epigenome_prediction,
        lambda d: ef.tl.evaluate_epigenome(d, tracks=d[:, :0].copy()),
        ValueError,
    ),
}


def test_every_returning_tool_is_checked():
    assert set(FAILING) == set(TOOLS) - set(WRITERS)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failed_call_leaves_the_input_untouched(name):
    make, call, error = FAILING[name]
    data = make()
    before = _snapshot(data)
    with pytest.raises(error):
        call(data)
    assert _same(_snapshot(data), before)
