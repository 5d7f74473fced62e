"""The key registry: every name epiformer reads from or writes into AnnData / MuData, written once.

Functions take these as defaults (``key_added=Key.obsm.methylgpt``), tests assert against them, and a
newcomer finds here where each result lands.
"""

from __future__ import annotations


class _Mod:
    methyl = "methyl"
    rna = "rna"


class _Obs:
    missing_fraction = "missing_fraction"
    n_observed = "n_observed"
    n_probes_covered = "n_probes_covered"
    mean_beta = "mean_beta"
    median_beta = "median_beta"
    frac_intermediate = "frac_intermediate"
    split = "split"
    # EpiGePT: contexts and variants
    n_cells = "n_cells"
    n_tfs_observed = "n_tfs_observed"
    chrom = "chrom"
    pos = "pos"
    ref = "ref"
    alt = "alt"
    motif_delta = "motif_delta"


class _Var:
    missing_fraction = "missing_fraction"
    mean_beta = "mean_beta"
    sd_beta = "sd_beta"
    n_probes_merged = "n_probes_merged"
    chrom = "chrom"
    pos = "pos"
    start = "start"
    end = "end"
    strand = "strand"
    split = "split"
    # EpiGePT: TFs, 128-bp bins, variant-effect columns
    tf_in_data = "in_data"
    n_motifs = "n_motifs"
    region = "region"
    window = "window_id"
    context = "context"
    signal = "signal"


class _Varm:
    seq_codes = "seq_codes"
    gene_dist = "gene_dist"


class _Obsm:
    spatial = "spatial"
    methylgpt = "X_methylgpt"


class _Layers:
    counts = "counts"
    # sequencing: methylated and total read counts per site (or region), the names scvi-tools METHYLVI reads
    mc = "mc"
    cov = "cov"
    imputed = "methylgpt_imputed"
    # EpiGePT: TF expression before normalisation, measured-TF mask, variant alleles, predicted signals
    tf_expression = "expression"
    observed = "observed"
    ref_signal = "ref"
    alt_signal = "alt"
    epigept_signals = ("DNase", "CTCF", "H3K27ac", "H3K4me3", "H3K36me3", "H3K27me3", "H3K9me3", "H3K4me1")
    # expression predictor / dilution
    diluted = "diluted"
    predicted_methylation = "predicted_methylation"


class _Uns:
    harmonize = "harmonize_probes"
    vocab_coverage = "vocab_coverage"
    qc = "methylation_qc"
    read = "epiformer_read"
    loci_to_probes = "loci_to_probes"
    aggregate_regions = "aggregate_regions"
    annotate_probes = "annotate_probes"
    geo_series = "geo_series"
    methylgpt = "methylgpt"
    # EpiGePT
    tf_context = "epigept_context"
    motif_scores = "motif_scores"
    epigept = "epigept"
    variant_effect = "epigept_variant_effect"
    tracks = "tracks"
    epigept_evaluation = "epigept_evaluation"
    # MethylGPT
    imputed = "methylgpt_imputed"
    attention = "methylgpt_attention"
    pretrain = "methylgpt_pretrain"
    # expression predictor / dilution
    expression_predictor = "expression_predictor"
    dilution = "dilution"


class Key:
    """Where epiformer writes and reads, by AnnData / MuData slot."""

    mod = _Mod
    obs = _Obs
    var = _Var
    varm = _Varm
    obsm = _Obsm
    layers = _Layers
    uns = _Uns
