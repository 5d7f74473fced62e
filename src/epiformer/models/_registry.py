"""The published checkpoints by name: where they come from, what files they hold, where epiformer keeps them.

``MethylGPT.from_pretrained("methylgpt_d64")`` and ``EpiGePT.from_pretrained("epigept_hg38")`` look a
registered name up here and load it from the epiformer cache (``$EPIFORMER_CACHE/pretrained/<name>/``). Nothing
is downloaded unless asked for (``download=True`` or :func:`fetch`); offline, the error names the URL, the
expected files and the exact folder to put them in. After the first successful load the sha256 of every file
is stored beside them (``sha256.json``) and checked on every later load, so a changed file is refused.

A name that is an existing file or folder is a path, never a registered name: local paths load exactly as
before. This module imports no torch, so :func:`list_pretrained` stays light.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from fnmatch import fnmatch
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from epiformer._cache import cache_dir
from epiformer._files import atomic_path
from epiformer._logging import logger

#: The file beside a cached checkpoint that records the sha256 of its files.
SUMS = "sha256.json"
#: Sub-folder of the epiformer cache holding the registered checkpoints.
SUBFOLDER = "pretrained"

_METHYLGPT_PAPER = "Ying et al. 2024, MethylGPT: a foundation model for the DNA methylome (bioRxiv)"
_METHYLGPT_DOI = "10.1101/2024.10.30.621013"
_METHYLGPT_README = "https://github.com/albert-ying/MethylGPT#pretrained-models"
_METHYLGPT_FILES = ("vocab.json", "args.json", "*.pt")
_METHYLGPT_LICENCE = "code: Apache-2.0 (the MethylGPT README); no separate licence is stated for the weights"
_METHYLGPT_INPUT = "beta values of the 49,156 CpGs of the MethylGPT vocabulary (450k-centric; EPIC-only sites absent)"

_EPIGEPT_PAPER = "Gao et al. 2024, EpiGePT: a pretrained transformer-based model for epigenomics (Genome Biology)"
_EPIGEPT_DOI = "10.1186/s13059-024-03449-7"
_EPIGEPT_PAGE = "https://health.tsinghua.edu.cn/epigept/download.php"
_EPIGEPT_LICENCE = "code: MIT (ZjGaothu/EpiGePT LICENSE); no licence is stated for the weights"


@dataclass(frozen=True)
class Pretrained:
    """One published checkpoint (see :func:`list_pretrained` for the meaning of each field)."""

    name: str
    model: str
    publication: str
    doi: str
    #: the page that documents the release (the README, the download page)
    page: str
    files: tuple[str, ...]
    size: str
    parameters: str
    genome: str
    licence: str
    how_to_obtain: str
    #: ``"gdrive_folder"`` (gdown), ``"url"`` (pooch) or ``"manual"`` (no direct link is known)
    download: str = "manual"
    #: the Google Drive folder id or the direct file URL
    locator: str | None = None
    #: the sha256 published for the file, when one is (pooch checks it while downloading)
    known_hash: str | None = None
    #: the file's path on the source page, when it differs from its name in the folder
    remote_file: str | None = None
    notes: str = field(default="")

    @property
    def url(self) -> str:
        """Where a person gets the files: the Drive folder, the direct URL or the download page."""
        if self.download == "gdrive_folder":
            return f"https://drive.google.com/drive/folders/{self.locator}"
        if self.download == "url" and self.locator:
            return self.locator
        return self.page


def _methylgpt(name: str, d: int, parameters: str, folder_id: str, also: str) -> Pretrained:
    return Pretrained(
        name=name,
        model="MethylGPT",
        publication=_METHYLGPT_PAPER,
        doi=_METHYLGPT_DOI,
        page=_METHYLGPT_README,
        files=_METHYLGPT_FILES,
        size="not stated",
        parameters=parameters,
        genome=_METHYLGPT_INPUT,
        licence=_METHYLGPT_LICENCE,
        how_to_obtain=(
            f"the authors' Google Drive folder {folder_id}, linked from {_METHYLGPT_README} "
            f"(`fetch('{name}')` with gdown, or by hand in a browser)"
        ),
        download="gdrive_folder",
        locator=folder_id,
        notes=(
            f"d_model={d}, 6 layers, 4 heads; called {also} upstream (names vary between the README versions: "
            "the width is read from the weights, never from names). The .pt file name varies between folders."
        ),
    )


def _epigept(name: str, file: str, genome: str, notes: str) -> Pretrained:
    return Pretrained(
        name=name,
        model="EpiGePT",
        publication=_EPIGEPT_PAPER,
        doi=_EPIGEPT_DOI,
        page=_EPIGEPT_PAGE,
        files=(Path(file).name,),
        size="not stated",
        parameters="71,343,376 (hg38 release, counted from the authors' code)" if genome == "hg38" else "not stated",
        genome=genome,
        licence=_EPIGEPT_LICENCE,
        how_to_obtain=f"`{file}` from the authors' download page (by hand; no direct link is recorded here)",
        notes=notes,
        remote_file=file,
    )


_ENTRIES = (
    _methylgpt(
        "methylgpt_d64",
        64,
        "3M (README); 3.33M counted from the code",
        "1kWdmkkVQpU17uzUC6-wpNR_4UEdxGx6k",
        "methylGPT-tiny / methylGPT-base",
    ),
    _methylgpt(
        "methylgpt_d128",
        128,
        "7M (README); 7.01M counted from the code",
        "14M4wdS83el9PAgh9TdfjSCeEcDPbz34f",
        "methylGPT-small / methylGPT-medium",
    ),
    _methylgpt(
        "methylgpt_d256",
        256,
        "15M (README); 15.42M counted from the code",
        "1lt8SF9MvoytPN3DeaxIss_ED9zNpf_Le",
        "methylGPT-normal / methylGPT-large / medium",
    ),
    _epigept(
        "epigept_hg38",
        "help/model.ckpt",
        "hg38",
        "8 signals, 711 TFs; the checkpoint of the authors' hg38 tutorial (`pretrainModel/model.ckpt`).",
    ),
    _epigept(
        "epigept_hg38_pretrained",
        "pretrain_models_hg38/pretrained_epigept.ckpt",
        "hg38",
        "8 signals, 711 TFs; the file users load in ZjGaothu/EpiGePT issues #1 and #5 (whether it equals "
        "`model.ckpt` is not verified).",
    ),
    _epigept(
        "epigept_hg19",
        "checkpoint/pretrain_model.ckpt",
        "hg19",
        "8 signals (hg19 `EpiGePT_pretrain` layout: encoder + fc2), loaded by the authors' predict.py.",
    ),
)

#: Registered name -> entry.
REGISTRY: dict[str, Pretrained] = {entry.name: entry for entry in _ENTRIES}

_COLUMNS = {
    "name": "name",
    "model": "model",
    "publication": "publication",
    "doi": "doi",
    "url": "source",
    "files": "files",
    "size": "size",
    "parameters": "parameters",
    "genome": "genome",
    "licence": "licence",
    "how_to_obtain": "how_to_obtain",
    "notes": "notes",
}


def cache_root() -> Path:
    """``<epiformer cache>/pretrained``, the epiformer cache being ``$EPIFORMER_CACHE`` or ``~/.cache/epiformer``."""
    return cache_dir() / SUBFOLDER


def folder_of(name: str) -> Path:
    """The cache folder of a registered checkpoint (not created)."""
    return cache_root() / _entry(name).name


def _entry(name: str) -> Pretrained:
    try:
        return REGISTRY[name]
    except KeyError:
        msg = f"{name!r} is not a registered checkpoint; registered names: {', '.join(REGISTRY)}."
        raise KeyError(msg) from None


def list_pretrained() -> pd.DataFrame:
    """The published checkpoints epiformer knows by name.

    Returns
    -------
    One row per checkpoint, indexed by name, with columns ``model`` (the epiformer class that loads it),
    ``publication``, ``doi``, ``source`` (the URL to get the files from), ``files`` (the files the folder
    must hold; ``*.pt`` is one file whose name varies), ``size`` (as stated by the authors, else
    ``"not stated"``), ``parameters``, ``genome`` (the genome build or the array CpGs it takes), ``licence``,
    ``how_to_obtain``, ``notes``, ``folder`` (where epiformer expects the files) and ``cached`` (whether
    they are there).
    """
    rows = []
    root = cache_root()
    for entry in REGISTRY.values():
        row = {column: getattr(entry, attr) for attr, column in _COLUMNS.items()}
        row["files"] = ", ".join(entry.files)
        row["folder"] = str(root / entry.name)
        row["cached"] = not _missing(entry, root / entry.name)
        rows.append(row)
    return pd.DataFrame(rows).set_index("name")


def _missing(entry: Pretrained, folder: Path) -> list[str]:
    """The expected files (patterns) that `folder` lacks."""
    present = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return [pattern for pattern in entry.files if not any(fnmatch(name, pattern) for name in present)]


def _not_cached(entry: Pretrained, folder: Path, missing: list[str]) -> FileNotFoundError:
    head = (
        f"The {entry.model} checkpoint {entry.name!r} is not in the epiformer cache: {folder} lacks "
        f"{', '.join(missing)}. "
    )
    if entry.download == "manual" or not entry.locator:
        how = (
            f"Download {entry.remote_file or ', '.join(entry.files)} "
            f"from {entry.url} by hand (no direct link is recorded for epiformer to follow) and put it in {folder} "
            f"as {', '.join(entry.files)}, or pass the file's own path to `{entry.model}.from_pretrained`."
        )
    else:
        tool = "gdown" if entry.download == "gdrive_folder" else "pooch"
        how = (
            f"Get {', '.join(entry.files)} from {entry.url} and put them directly in {folder}, or let epiformer "
            f"download them with {tool}: `{entry.model}.from_pretrained({entry.name!r}, download=True)` or "
            f"`ef.models.fetch({entry.name!r})`."
        )
    tail = " (EPIFORMER_CACHE sets another cache folder.) epiformer never downloads unless asked."
    return FileNotFoundError(head + how + tail)


def _download_gdrive_folder(folder_id: str, dest: Path) -> None:
    """Download a public Google Drive folder into `dest` with gdown."""
    try:
        import gdown
    except ImportError:
        msg = (
            "Downloading the MethylGPT checkpoints from the authors' Google Drive needs gdown: "
            "`pip install 'epiformer[download]'` (or `pip install gdown`), or download the folder in a browser."
        )
        raise ImportError(msg) from None
    gdown.download_folder(id=folder_id, output=str(dest), quiet=False, use_cookies=False)


def _download_url(url: str, dest: Path, fname: str, known_hash: str | None) -> None:
    """Download `url` to ``dest / fname`` with pooch (checking `known_hash` when given)."""
    try:
        import pooch
    except ImportError:
        msg = "Downloading checkpoints needs pooch: `pip install 'epiformer[download]'`, or download the file by hand."
        raise ImportError(msg) from None
    pooch.retrieve(url, known_hash=known_hash, fname=fname, path=str(dest), progressbar=True)


def fetch(name: str, *, force: bool = False) -> Path:
    """Download a registered checkpoint into the epiformer cache (only when asked: nothing downloads by itself).

    MethylGPT folders come from the authors' Google Drive through gdown (an optional dependency:
    ``pip install "epiformer[download]"``); plain URLs through pooch. Checkpoints without a direct link (EpiGePT's download page)
    raise a :class:`FileNotFoundError` that says where to get them and where to put them.

    Parameters
    ----------
    name
        A registered name (see :func:`list_pretrained`).
    force
        Download again even when the files are already in the cache (the stored sha256 sums are then
        replaced at the next load).

    Returns
    -------
    The cache folder holding the checkpoint's files.
    """
    entry = _entry(name)
    folder = folder_of(name)
    if not force and not _missing(entry, folder):
        return folder
    if entry.download == "manual" or not entry.locator:
        raise _not_cached(entry, folder, _missing(entry, folder) or list(entry.files))
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{entry.name}.") as tmp:
        staging = Path(tmp)
        logger.info("Downloading %s checkpoint %r from %s into %s", entry.model, entry.name, entry.url, folder)
        if entry.download == "gdrive_folder":
            _download_gdrive_folder(entry.locator, staging)
        else:
            _download_url(entry.locator, staging, entry.files[0], entry.known_hash)
        found = {p.name: p for p in sorted(staging.rglob("*")) if p.is_file() and not p.name.startswith(".")}
        lacking = [pattern for pattern in entry.files if not any(fnmatch(n, pattern) for n in found)]
        if lacking:
            msg = (
                f"The download of {entry.name!r} from {entry.url} holds {', '.join(found) or 'no file'}, "
                f"not {', '.join(lacking)}; nothing was placed in {folder}. The source may have changed: "
                "download the files by hand and put them there."
            )
            raise FileNotFoundError(msg)
        folder.mkdir(parents=True, exist_ok=True)
        if force:
            (folder / SUMS).unlink(missing_ok=True)
        for file_name, path in found.items():
            shutil.move(str(path), folder / file_name)
    return folder


def _sums(folder: Path) -> dict[str, str]:
    from epiformer.models._base import sha256

    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != SUMS and p.name[0] != "."}


@dataclass
class Resolved:
    """Where `from_pretrained` loads from, and what to do once the load succeeded."""

    path: Path
    name: str | None = None
    folder: Path | None = None
    recorded: dict[str, str] | None = None

    def confirm(self, model: Any) -> None:
        """After a successful load: store the sha256 sums (first load) and record the name in the provenance."""
        if self.name is None or self.folder is None:
            return
        if self.recorded is None:
            with atomic_path(self.folder / SUMS) as tmp:
                tmp.write_text(json.dumps({"name": self.name, "sha256": _sums(self.folder)}, indent=1) + "\n")
        checkpoint = getattr(model, "checkpoint", None)
        if isinstance(checkpoint, dict):
            checkpoint["name"] = self.name


def _verify(entry: Pretrained, folder: Path) -> dict[str, str] | None:
    """The recorded sums after checking them against the files (None before the first load)."""
    sums_file = folder / SUMS
    if not sums_file.is_file():
        return None
    recorded = json.loads(sums_file.read_text()).get("sha256", {})
    current = _sums(folder)
    for file_name, expected in recorded.items():
        got = current.get(file_name)
        if got is None:
            msg = f"{folder / file_name} of checkpoint {entry.name!r} was removed since its first load; restore it."
            raise FileNotFoundError(msg)
        if got != expected:
            msg = (
                f"{folder / file_name} of checkpoint {entry.name!r} changed since its first load: sha256 {got}, "
                f"recorded {expected} in {sums_file}. Nothing was loaded. Restore the file, or delete {sums_file} "
                f"to accept the new one (or `ef.models.fetch({entry.name!r}, force=True)` to download it again)."
            )
            raise ValueError(msg)
    return recorded


def resolve(path: str | PathLike, *, model: str, download: bool = False) -> Resolved:
    """A local path unchanged, or a registered name turned into its verified cache folder (or file).

    Raises
    ------
    FileNotFoundError
        A registered checkpoint that is not cached (and `download` is False), or a bare name that is neither
        a path nor registered (the message lists the registered names).
    ValueError
        A name registered for another model, or a cached file whose sha256 changed since the first load.
    """
    target = Path(path)
    text = str(path)
    if target.exists() or not isinstance(path, str) or text not in REGISTRY:
        if not target.exists() and isinstance(path, str) and _looks_like_name(text):
            names = ", ".join(n for n, e in REGISTRY.items() if e.model == model)
            msg = (
                f"{text!r} is neither an existing file or folder nor a registered {model} checkpoint. "
                f"Registered names: {names} (see `ef.models.list_pretrained()`)."
            )
            raise FileNotFoundError(msg)
        return Resolved(target)
    entry = REGISTRY[text]
    if entry.model != model:
        msg = f"{text!r} is a {entry.model} checkpoint; load it with `ef.models.{entry.model}.from_pretrained`."
        raise ValueError(msg)
    folder = folder_of(text)
    missing = _missing(entry, folder)
    if missing:
        if not download:
            raise _not_cached(entry, folder, missing)
        fetch(text)
    recorded = _verify(entry, folder)
    load = folder if entry.model == "MethylGPT" else folder / entry.files[0]
    return Resolved(load, name=text, folder=folder, recorded=recorded)


def _looks_like_name(text: str) -> bool:
    """A bare word such as ``methylgpt_d64``: no folder separator and no file suffix."""
    return "/" not in text and "\\" not in text and not Path(text).suffix
