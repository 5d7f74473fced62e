from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.special import logit

import epiformer as ef


def test_layout_and_planted_rule(synthetic_small):
    mdata = synthetic_small
    rna, methyl = mdata["rna"], mdata["methyl"]
    assert rna.shape == (60, 30) and methyl.shape == (60, 400)
    assert (rna.obs_names == methyl.obs_names).all()
    counts = rna.layers["counts"]
    assert np.allclose(counts, np.round(counts)) and (counts >= 0).all()
    np.testing.assert_allclose(rna.X, np.log1p(counts / counts.sum(1, keepdims=True) * 1e4), rtol=1e-5)
    assert {"chrom", "start", "end", "strand", "tss", "island_promoter"} <= set(rna.var.columns)
    tss = np.where(rna.var["strand"] == "+", rna.var["start"], rna.var["end"])
    np.testing.assert_array_equal(tss, rna.var["tss"])
    betas = methyl.X
    assert 0.0 < np.isnan(betas).mean() < 0.03
    assert np.nanmin(betas) > 0 and np.nanmax(betas) < 1

    var = methyl.var
    driven = var["expression_driven"].to_numpy()
    assert 0.15 < driven.mean() < 0.25
    assert (var.loc[driven, "tss_offset"].between(-1000, 500)).all() and not var.loc[driven, "in_island"].any()
    drivers = rna.var.loc[var.loc[driven, "driver_gene"], "island_promoter"]
    assert not drivers.any()
    # the rule, rebuilt from the stored truth: driven CpGs follow minus their driver's standardised expression
    z = (rna.X - rna.X.mean(0)) / rna.X.std(0)
    position = {g: i for i, g in enumerate(rna.var_names)}
    rho = []
    for j in np.flatnonzero(driven):
        seen = ~np.isnan(betas[:, j])
        rho.append(np.corrcoef(logit(betas[seen, j]), z[seen, position[var["driver_gene"].iloc[j]]])[0, 1])
    assert np.median(rho) < -0.9
    residual = logit(betas) - var["base_logit"].to_numpy()
    assert abs(np.nanmean(residual[:, ~driven])) < 0.1  # offsets and noise are centred
    assert np.nanmean(residual[:, driven]) == pytest.approx(-1.5, abs=0.3)  # z averages out over samples
    # islands (high CpG density) are unmethylated, CpG-poor DNA methylated
    means = np.nanmean(betas, axis=0)
    assert means[var["in_island"].to_numpy()].mean() < 0.1 < 0.8 < means[~var["in_island"].to_numpy() & ~driven].mean()


def test_fasta_cache_and_reproducibility(tmp_path, monkeypatch):
    first = ef.datasets.synthetic_multiome(10, 6, 40, cache_dir=tmp_path / "here", random_state=3)
    fasta = Path(first.uns["synthetic"]["fasta"])
    assert fasta.parent == tmp_path / "here" and fasta.is_file()
    genome = ef.io.Genome(fasta)
    assert genome.chromosomes == ["1", "2", "3"]
    var = first["methyl"].var
    centre = np.array([genome.fetch(c, p, p + 1) for c, p in zip(var["chrom"], var["pos"], strict=True)])
    assert (centre == [1, 2]).all()

    monkeypatch.setenv("EPIFORMER_CACHE", str(tmp_path / "env"))
    again = ef.datasets.synthetic_multiome(10, 6, 40, random_state=3)
    assert Path(again.uns["synthetic"]["fasta"]).parent == tmp_path / "env"
    assert Path(again.uns["synthetic"]["fasta"]).read_bytes() == fasta.read_bytes()
    np.testing.assert_array_equal(again["methyl"].X, first["methyl"].X)
    other = ef.datasets.synthetic_multiome(10, 6, 40, random_state=4)
    assert other.uns["synthetic"]["fasta"] != again.uns["synthetic"]["fasta"]


def test_gene_names_and_errors():
    visium = ef.datasets.visium_small()
    mdata = ef.datasets.synthetic_multiome(12, 99, 30, gene_names=visium.var_names, random_state=0)
    assert list(mdata["rna"].var_names) == list(visium.var_names)
    assert set(mdata["methyl"].var["driver_gene"]) - {""} <= set(visium.var_names)
    with pytest.raises(ValueError, match="Duplicated gene names"):
        ef.datasets.synthetic_multiome(12, gene_names=["a", "a", "b"])
    with pytest.raises(ValueError, match="frac_driven"):
        ef.datasets.synthetic_multiome(12, 10, 10, frac_driven=0.8, frac_island_promoter=0.5)
    with pytest.raises(ValueError, match="usable CpGs"):
        ef.datasets.synthetic_multiome(12, 3, 100_000)


def test_synthetic_spatial_domains():
    adata = ef.datasets.synthetic_spatial(12, 10, 80, n_domains=3, random_state=1)
    assert adata.shape == (120, 80)
    assert sparse.issparse(adata.X) and sparse.issparse(adata.layers["counts"])
    assert adata.obsm["spatial"].shape == (120, 2)
    assert adata.obs["domain"].nunique() == 3
    X = adata.X.toarray()
    share = X / X.sum(1, keepdims=True)
    for domain in adata.obs["domain"].cat.categories:
        markers = (adata.var["marker_of"] == domain).to_numpy()
        inside = (adata.obs["domain"] == domain).to_numpy()
        assert markers.sum() == 8
        assert share[np.ix_(inside, markers)].mean() > 3 * share[np.ix_(~inside, markers)].mean()
    named = ef.datasets.synthetic_spatial(3, 3, gene_names=["a", "b"], n_domains=1)
    assert list(named.var_names) == ["a", "b"]
