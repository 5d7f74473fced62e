"""A checkpoint that would run code when unpickled is refused, and nothing in it runs."""

from __future__ import annotations

import builtins
import pickle
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from epigept_published import SAFE_LOADER, PublishedEpiGePT, needs_safe_loader, small_config

from epiformer.models import EpiGePT


class _Payload:
    """Unpickling this object calls ``exec``, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def _checkpoint(marker: Path) -> dict:
    state = PublishedEpiGePT(small_config()).state_dict()
    return {"state_dict": state, "epoch": 1, "callbacks": {"payload": _Payload(marker)}}


@needs_safe_loader
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, zip_format):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.ckpt"
    torch.save(_checkpoint(marker), path, _use_new_zipfile_serialization=zip_format)
    assert not marker.exists()

    with pytest.raises(
        ValueError, match=r"Refusing to load evil.ckpt: it refers to .*exec.*Nothing in the file was executed"
    ):
        EpiGePT.from_pretrained(path, n_heads=4)
    assert not marker.exists()

    # the file really is malicious: an unrestricted load runs the payload
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


@needs_safe_loader
def test_unknown_class_is_refused(tmp_path):
    import fractions

    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "ratio": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match="fractions.Fraction"):
        EpiGePT.from_pretrained(path)


@needs_safe_loader
def test_plain_pickle_is_not_a_checkpoint(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(_checkpoint(marker)))
    with pytest.raises((ValueError, RuntimeError)):
        EpiGePT.from_pretrained(path, n_heads=4)
    assert not marker.exists()


@pytest.mark.skipif(SAFE_LOADER, reason="torch>=2.5 has the restricted loader")
def test_old_torch_refuses_lightning_checkpoints_with_the_version_to_install(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.ckpt"
    torch.save(_checkpoint(marker), path)
    with pytest.raises(ImportError, match=r"needs torch>=2.5"):
        EpiGePT.from_pretrained(path, n_heads=4)
    assert not marker.exists()  # refused before anything in the file is read
