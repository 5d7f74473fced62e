from __future__ import annotations

import numpy as np
import pytest

import epiformer as ef
from epiformer._annotations import pair_split


def test_random_split_is_disjoint_on_both_axes(synthetic_small):
    mdata = synthetic_small
    ef.pp.split_pairs(mdata, test_size=0.3, val_size=0.1, random_state=1)
    samples = mdata.obs["split"]
    cpgs = mdata["methyl"].var["split"]
    assert list(samples.cat.categories) == ["train", "val", "test"]
    assert samples.value_counts().to_dict() == {"train": 36, "test": 18, "val": 6}
    assert cpgs.value_counts().to_dict() == {"train": 240, "test": 120, "val": 40}
    assert (mdata["rna"].obs["split"].to_numpy() == samples.to_numpy()).all()
    assert (mdata["methyl"].obs["split"].to_numpy() == samples.to_numpy()).all()
    again = ef.pp.split_pairs(mdata, test_size=0.3, val_size=0.1, random_state=1, copy=True)
    assert (again["methyl"].var["split"] == cpgs).all()
    assert mdata["methyl"].uns["split"]["params"]["by"] == "random"


def test_block_and_chromosome_groups_stay_whole(synthetic_small):
    mdata = synthetic_small
    ef.pp.split_pairs(mdata, by="block", block_size=50_000)
    var = mdata["methyl"].var
    block = var["chrom"].astype(str) + ":" + ((var["pos"] - 1) // 50_000).astype(str)
    assert (var.groupby(block, observed=True)["split"].nunique() == 1).all()
    assert set(var["split"]) == {"train", "val", "test"}
    ef.pp.split_pairs(mdata, by="chromosome", test_size=0.3, val_size=0.3)
    per_chrom = mdata["methyl"].var.groupby("chrom", observed=True)["split"].nunique()
    assert (per_chrom == 1).all() and len(per_chrom) == 3


def test_errors_leave_data_untouched(synthetic_small):
    mdata = synthetic_small
    with pytest.raises(ValueError, match="test_size"):
        ef.pp.split_pairs(mdata, test_size=0.8, val_size=0.3)
    with pytest.raises(ValueError, match="by"):
        ef.pp.split_pairs(mdata, by="gene")
    methyl = mdata["methyl"]
    two = methyl[:, methyl.var["chrom"].isin(["chr1", "chr2"]).to_numpy()].copy()
    with pytest.raises(ValueError, match="at least 3 chromosomes"):
        ef.pp.split_pairs(two, by="chromosome")
    with pytest.raises(ValueError, match="would hold no"):
        ef.pp.split_pairs(two, by="block", block_size=10**9)  # two chromosomes, two blocks, three splits
    assert "split" not in mdata.obs and "split" not in mdata["methyl"].var
    with pytest.raises(KeyError, match="split_pairs"):
        pair_split(mdata)
    assert np.isfinite(mdata["methyl"].X[~np.isnan(mdata["methyl"].X)]).all()
