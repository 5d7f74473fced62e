"""Small helpers shared by every sub-package: matrix access, modality selection, provenance, devices."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from anndata import AnnData
from scipy import sparse

from epiformer._logging import warn
from epiformer._validation import count_nonfinite

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    import torch
    from mudata import MuData


def package_version() -> str:
    """The installed epiformer version (``"unknown"`` when run from a source tree that is not installed)."""
    try:
        return version("epiformer")
    except PackageNotFoundError:
        return "unknown"


def layer_names(adata: AnnData) -> list[str]:
    """The named layers of `adata`, without the ``None`` entry for ``.X`` that anndata 0.13 lists among them."""
    return [name for name in adata.layers.keys() if name is not None]


def get_matrix(adata: AnnData, layer: str | None = None):
    """Return ``adata.layers[layer]`` (or ``.X`` for `None`) with a clear error when the layer is absent."""
    if layer is None:
        if adata.X is None:
            msg = "`adata.X` is empty; pass `layer=` to choose the matrix."
            raise ValueError(msg)
        return adata.X
    names = layer_names(adata)
    if layer not in names:
        msg = f"Layer {layer!r} not found; available layers: {sorted(names)}."
        raise KeyError(msg)
    return adata.layers[layer]


def to_dense_float(X, dtype=np.float32) -> np.ndarray:
    """A dense ndarray copy-on-need of `X` (dense, sparse or an h5py-backed dataset) in `dtype`."""
    if sparse.issparse(X):
        X = X.toarray()
    elif not isinstance(X, np.ndarray):
        X = X[...] if hasattr(X, "shape") and not hasattr(X, "toarray") else X.toarray()
    return np.asarray(X, dtype=dtype)


def select_modality(data: AnnData | MuData, mod: str | None, *, default: str) -> AnnData:
    """The AnnData to work on: `data` itself, or ``data.mod[mod or default]`` for a MuData."""
    if isinstance(data, AnnData):
        return data
    name = mod or default
    if name not in data.mod:
        msg = f"Modality {name!r} not found in the MuData; available: {list(data.mod)}. Pass `mod=`."
        raise KeyError(msg)
    return data.mod[name]


def record_params(
    adata: AnnData, key: str, params: dict[str, Any], *, outputs: Mapping[str, Any] | None = None, **extra: Any
) -> None:
    """Write ``uns[key] = {"params": {..., "epiformer_version": ...}, **extra}``, scanpy's provenance layout.

    `outputs` maps each written result (``"obsm['X_methylgpt']"``) to its values, or to the count of its NaN or
    infinite values: a result with any is warned about with the count, which is recorded as
    ``uns[key]["n_nonfinite"]``.
    """
    nonfinite = {}
    for name, values in (outputs or {}).items():
        n = int(values) if isinstance(values, int | np.integer) else count_nonfinite(values)
        if n:
            nonfinite[name] = n
            warn(
                f"{n} of the values written to {name} are NaN or infinite: the model overflowed or its inputs hold "
                f"extreme values. They are kept as they are and counted in uns[{key!r}]['n_nonfinite']."
            )
    if nonfinite:
        extra["n_nonfinite"] = nonfinite
    adata.uns[key] = {"params": {**params, "epiformer_version": package_version()}, **extra}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is passed to :class:`torch.device`.

    Raises
    ------
    ValueError
        If a CUDA or MPS device is asked for where it is not available.
    """
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device != "auto":
        device = torch.device(device)
        if (device.type == "cuda" and not torch.cuda.is_available()) or (device.type == "mps" and not mps):
            msg = f"`device={str(device)!r}` is not available on this machine; use device='auto' (or 'cpu')."
            raise ValueError(msg)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps:
        return torch.device("mps")
    return torch.device("cpu")


def as_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from a seed or an existing generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def progress_bar(*args: Any, **kwargs: Any):
    """A :mod:`tqdm` progress bar: the notebook widget (:mod:`tqdm.auto`) where ipywidgets is installed, else text.

    Without ipywidgets, :mod:`tqdm.auto` would warn "IProgress not found" in every notebook; the text bar works
    everywhere.
    """
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(*args, **kwargs)


def read_columns(X, columns: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray:
    """Dense float32 ``X[:, columns]`` from an in-memory, sparse or backed (h5py) matrix, read in row chunks."""
    out = np.empty((X.shape[0], len(columns)), dtype=np.float32)
    for start in range(0, X.shape[0], chunk_size):
        block = to_dense_float(X[start : start + chunk_size])
        out[start : start + chunk_size] = block[:, columns]
    return out


def copy_data(data: AnnData | MuData) -> AnnData | MuData:
    """An in-memory copy of `data` (a backed AnnData is loaded into memory)."""
    if isinstance(data, AnnData) and data.isbacked:
        return data.to_memory()
    return data.copy()


def output(data: AnnData | MuData, *, copy: bool, mod: str | None, default: str) -> tuple[AnnData | MuData, AnnData]:
    """Where a tool writes: `data` itself (or its copy), and the AnnData (modality) inside it that receives the result.

    Call it after every check has passed, so a failed call never touches the caller's object.
    """
    data = copy_data(data) if copy else data
    return data, select_modality(data, mod, default=default)


def split_rows(
    items: np.ndarray, *, val_size: float, random_state: int | np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `items` into training and validation parts (each sorted).

    ``round(val_size * n)`` items are held out, at least one when `val_size` is positive; the training part
    may come out empty, which callers check with their own message.
    """
    order = as_generator(random_state).permutation(np.asarray(items))
    n_val = 0 if val_size == 0 or len(order) < 2 else max(1, round(val_size * len(order)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def renamed_options(**renames: str) -> Callable[[F], F]:
    """Accept the old names of renamed keyword options for one release, with a :class:`FutureWarning`.

    ``@renamed_options(validation_fraction="val_size")`` lets ``f(..., validation_fraction=0.1)`` run as
    ``f(..., val_size=0.1)``; the signature shows only the new names.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        msg = f"`{old}=` is the old name of `{new}=`; pass only `{new}=`."
                        raise TypeError(msg)
                    warn(
                        f"`{old}=` is renamed `{new}=`; the old name will be removed in the next release.",
                        FutureWarning,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
