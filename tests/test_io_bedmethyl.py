from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import epiformer as ef


def _bismark(path, rows):
    path.write_text("".join(f"{c}\t{p}\t{p}\t{100 * m / (m + u):.1f}\t{m}\t{u}\n" for c, p, m, u in rows))
    return path


def test_bismark_union_of_sites(tmp_path):
    a = _bismark(tmp_path / "a.cov", [("chr1", 100, 3, 1), ("chr2", 50, 0, 2)])
    b = _bismark(tmp_path / "b.cov", [("chr1", 100, 1, 1), ("chr1", 200, 4, 0), ("chr10", 5, 1, 0)])
    adata = ef.io.read_bedmethyl([a, b])
    assert list(adata.obs_names) == ["a", "b"]
    assert list(adata.var_names) == ["chr1:100", "chr1:200", "chr2:50", "chr10:5"]  # genome order
    assert adata.var["pos"].tolist() == [100, 200, 50, 5]
    np.testing.assert_allclose(adata.X[0], [0.75, np.nan, 0.0, np.nan])
    np.testing.assert_allclose(adata.X[1], [0.5, 1.0, np.nan, 1.0])
    assert sparse.issparse(adata.layers["coverage"])
    assert adata.layers["coverage"].toarray().tolist() == [[4, 0, 2, 0], [2, 4, 0, 1]]
    assert adata.layers["methylated"].toarray().tolist() == [[3, 0, 0, 0], [1, 4, 0, 1]]


def test_encode_bedmethyl_zero_based(tmp_path):
    lines = [
        'track name="x"\n',
        "chr1\t99\t100\t.\t10\t+\t99\t100\t0,255,0\t10\t70\n",
        "chr1\t100\t101\t.\t4\t-\t100\t101\t0,255,0\t4\t25\n",
    ]
    (tmp_path / "s1.bed").write_text("".join(lines))
    adata = ef.io.read_bedmethyl(tmp_path / "s1.bed", sample_names=["x"])
    assert list(adata.var_names) == ["chr1:100", "chr1:101"]
    np.testing.assert_allclose(adata.X[0], [0.7, 0.25])


def test_modkit_keeps_one_modification(tmp_path):
    row = "chr1\t9\t10\t{m}\t5\t+\t9\t10\t255,0,0\t10\t{p}\t{n}\t{c}\t0\t0\t0\t0\t0\n"
    (tmp_path / "k.bed").write_text(row.format(m="m", p=60.0, n=6, c=4) + row.format(m="h", p=10.0, n=1, c=9))
    adata = ef.io.read_bedmethyl(tmp_path / "k.bed")
    assert adata.n_vars == 1 and adata.X[0, 0] == pytest.approx(0.6)
    hmc = ef.io.read_bedmethyl(tmp_path / "k.bed", modification="h")
    assert hmc.X[0, 0] == pytest.approx(0.1)


def test_bedmethyl_errors(tmp_path):
    (tmp_path / "e.cov").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ef.io.read_bedmethyl(tmp_path / "e.cov")
    (tmp_path / "w.txt").write_text("chr1\t1\t2\n")
    with pytest.raises(ValueError, match="3 columns"):
        ef.io.read_bedmethyl(tmp_path / "w.txt")
    (tmp_path / "n.cov").write_text("chr1\t5\t5\t50\t-1\t2\n")
    with pytest.raises(ValueError, match="negative counts"):
        ef.io.read_bedmethyl(tmp_path / "n.cov")
    a = _bismark(tmp_path / "a.cov", [("chr1", 1, 1, 1)])
    with pytest.raises(ValueError, match="Duplicated sample names"):
        ef.io.read_bedmethyl([a, a])
    with pytest.raises(ValueError, match="2 sample names for 1 files"):
        ef.io.read_bedmethyl([a], sample_names=["x", "y"])
    d = _bismark(tmp_path / "d.cov", [("chr1", 1, 1, 1), ("chr1", 1, 2, 0)])
    with pytest.raises(ValueError, match="more than once"):
        ef.io.read_bedmethyl(d)
