"""A seeded synthetic methylation cohort with a planted, documented ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.special import expit

from epiformer._utils import as_generator

TISSUES = ("blood", "buccal", "liver", "brain", "muscle", "adipose", "colon", "lung")


def synthetic_methylome(
    n_obs: int = 500,
    n_vars: int = 2000,
    *,
    n_tissues: int = 3,
    n_batches: int = 2,
    frac_age: float = 0.1,
    frac_tissue: float = 0.15,
    frac_sex: float = 0.02,
    frac_disease: float = 0.05,
    disease_prevalence: float = 0.3,
    missing_rate: float = 0.02,
    noise: float = 0.3,
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """A synthetic methylation cohort (array-like betas) whose every effect is known.

    Each CpG ``j`` of sample ``i`` is drawn on the logit scale as

    ``logit(beta_ij) = base_j + age_slope_j (age_i - 50) + tissue_effect_j [tissue_i = tissue_j]
    + sex_effect_j [sex_i = F] + disease_effect_j [disease_i = case] + batch_shift_{b_i, j} + eps_ij``

    with ``eps ~ N(0, noise^2)``. Baselines are bimodal (45 % unmethylated around -2.5, 45 % methylated
    around +2.5, 10 % intermediate around 0). A fraction of CpGs carries each effect (a CpG carries at most
    one): age slopes of 0.01-0.04 logit units per year with random sign; tissue effects of 1.5-3 in one
    tissue; sex effects of 2; disease effects of 0.8-1.5. Each batch shifts every CpG by ``N(0, 0.2^2)``.
    Values are then removed completely at random with probability `missing_rate`.

    Parameters
    ----------
    n_obs
        Number of samples.
    n_vars
        Number of CpGs (named like Illumina probes, ``cg00000000`` ...; sorted).
    n_tissues
        Number of tissues (at most 8), assigned uniformly.
    n_batches
        Number of batches, assigned uniformly.
    frac_age, frac_tissue, frac_sex, frac_disease
        Fractions of CpGs linked to age, to one tissue, to sex and to disease.
    disease_prevalence
        Fraction of samples with ``disease = "case"``.
    missing_rate
        Probability that a value is missing (NaN).
    noise
        Standard deviation of the per-value noise on the logit scale.
    random_state
        Seed or generator; the same seed gives the same cohort.

    Returns
    -------
    AnnData of float32 betas (NaN = missing) with

    `obs`
        `age` (uniform 18-90 years), `tissue`, `sex` (``F``/``M``), `disease` (``healthy``/``case``),
        `batch`.
    `var`
        The ground truth: `base_logit`, `age_slope` (logit per year; 0 unless age-linked), `tissue`
        (the tissue a tissue-specific CpG marks, ``"none"`` otherwise), `tissue_effect`, `sex_effect`,
        `disease_effect`, `effect` (which effect the CpG carries: ``age``, ``tissue``, ``sex``,
        ``disease`` or ``none``), plus synthetic `chrom` and `pos`.
    `uns['synthetic']`
        The generator's parameters.
    """
    if not 1 <= n_tissues <= len(TISSUES):
        msg = f"`n_tissues` must be between 1 and {len(TISSUES)}, got {n_tissues}."
        raise ValueError(msg)
    if n_obs < 1 or n_vars < 1 or n_batches < 1:
        msg = "`n_obs`, `n_vars` and `n_batches` must be positive."
        raise ValueError(msg)
    fractions = np.array([frac_age, frac_tissue, frac_sex, frac_disease])
    if (fractions < 0).any() or fractions.sum() > 1:
        msg = "The effect fractions must be non-negative and sum to at most 1."
        raise ValueError(msg)
    rng = as_generator(random_state)

    # samples
    age = rng.uniform(18, 90, n_obs)
    tissue = rng.integers(0, n_tissues, n_obs)
    female = rng.random(n_obs) < 0.5
    case = rng.random(n_obs) < disease_prevalence
    batch = rng.integers(0, n_batches, n_obs)

    # CpGs: bimodal baselines, then one effect per CpG at most
    state = rng.choice(3, size=n_vars, p=[0.45, 0.45, 0.10])
    base = np.choose(state, [rng.normal(-2.5, 0.6, n_vars), rng.normal(2.5, 0.6, n_vars), rng.normal(0, 0.5, n_vars)])
    counts = np.floor(fractions * n_vars).astype(int)
    effect = np.repeat(np.array(["age", "tissue", "sex", "disease"]), counts)
    effect = np.concatenate([effect, np.full(n_vars - len(effect), "none")])
    rng.shuffle(effect)
    sign = rng.choice([-1.0, 1.0], n_vars)
    age_slope = np.where(effect == "age", sign * rng.uniform(0.01, 0.04, n_vars), 0.0)
    cpg_tissue = np.where(effect == "tissue", rng.integers(0, n_tissues, n_vars), -1)
    tissue_effect = np.where(effect == "tissue", sign * rng.uniform(1.5, 3.0, n_vars), 0.0)
    sex_effect = np.where(effect == "sex", sign * 2.0, 0.0)
    disease_effect = np.where(effect == "disease", sign * rng.uniform(0.8, 1.5, n_vars), 0.0)
    batch_shift = rng.normal(0, 0.2, (n_batches, n_vars))

    logit = (
        base[None, :]
        + np.outer(age - 50.0, age_slope)
        + (tissue[:, None] == cpg_tissue[None, :]) * tissue_effect[None, :]
        + np.outer(female, sex_effect)
        + np.outer(case, disease_effect)
        + batch_shift[batch]
        + rng.normal(0, noise, (n_obs, n_vars))
    )
    X = expit(logit).astype(np.float32)
    X[rng.random((n_obs, n_vars)) < missing_rate] = np.nan

    names = np.array(TISSUES[:n_tissues])
    obs = pd.DataFrame(
        {
            "age": age,
            "tissue": pd.Categorical(names[tissue], categories=names),
            "sex": pd.Categorical(np.where(female, "F", "M"), categories=["F", "M"]),
            "disease": pd.Categorical(np.where(case, "case", "healthy"), categories=["healthy", "case"]),
            "batch": pd.Categorical([f"batch{b}" for b in batch]),
        },
        index=pd.Index([f"sample{i:05d}" for i in range(n_obs)]),
    )
    ids = np.sort(rng.choice(10**8, size=n_vars, replace=False))
    chrom = np.sort(rng.integers(1, 23, n_vars))
    var = pd.DataFrame(
        {
            "base_logit": base,
            "age_slope": age_slope,
            "tissue": np.where(cpg_tissue >= 0, names[np.maximum(cpg_tissue, 0)], "none"),
            "tissue_effect": tissue_effect,
            "sex_effect": sex_effect,
            "disease_effect": disease_effect,
            "effect": effect,
            "chrom": [f"chr{c}" for c in chrom],
            "pos": rng.integers(10_000, 100_000_000, n_vars),
        },
        index=pd.Index([f"cg{i:08d}" for i in ids]),
    )
    adata = AnnData(X=X, obs=obs, var=var)
    adata.uns["synthetic"] = {
        "generator": "synthetic_methylome",
        "params": {
            "n_tissues": n_tissues,
            "n_batches": n_batches,
            "frac_age": frac_age,
            "frac_tissue": frac_tissue,
            "frac_sex": frac_sex,
            "frac_disease": frac_disease,
            "disease_prevalence": disease_prevalence,
            "missing_rate": missing_rate,
            "noise": noise,
        },
    }
    return adata
