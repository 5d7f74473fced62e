"""Bad input, as users hit it: each call refused with a documented error type that names the object or file and
says what to do, and nothing the call was handed is changed (the shared `refuses` fixture checks both)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse

import epiformer as ef
from epiformer.models import EpiGePT, MethylGPT, MethylGPTVocab

HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


@pytest.fixture
def tiny_model():
    probes = [f"cg{i:08d}" for i in range(8)]
    return MethylGPT(MethylGPTVocab.from_probes(probes), d_model=16, n_layers=1, n_heads=2)


@pytest.fixture
def saved_model(tiny_model, tmp_path):
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    return folder


# --- io: files that are missing, truncated, or something else ---


def _sites() -> AnnData:
    counts = sparse.csr_matrix(np.ones((2, 3), dtype=np.int32))
    var = pd.DataFrame({"chrom": "chr1", "pos": [10, 20, 30]}, index=["chr1:10", "chr1:20", "chr1:30"])
    return AnnData(X=None, obs=pd.DataFrame(index=["c0", "c1"]), var=var, layers={"mc": counts, "cov": counts * 2})


READERS = {
    "betas.csv": ef.io.read_methylation_matrix,
    "betas.tsv.gz": ef.io.read_methylation_matrix,
    "GSE1_series_matrix.txt.gz": ef.io.read_geo_series_matrix,
    "cell1.cov.gz": lambda path: ef.io.read_bedmethyl(path, format="bismark_cov"),
    "EPIC.csv": ef.io.read_manifest,
    "hg19.fa": ef.io.Genome.open,
    "calls.vcf.gz": ef.io.read_vcf,
    "all_motif_rmdup.motif.gz": ef.io.read_homer_motifs,
    "MotifMatch_human_rmdup.mat": ef.io.read_motif_to_tf,
    "enhancers.bed.gz": lambda path: ef.pp.aggregate_regions(_sites(), regions=path),
    "K562.DNase.bw": lambda path: ef.io.read_bigwig(path, regions="chr1:1-1280"),
}
#: A few thousand lines of each gzip-compressed format, to cut in half.
ROWS = {
    "betas.tsv.gz": "ID_REF\tS1\n" + "".join(f"cg{i:08d}\t0.5\n" for i in range(20000)),
    "GSE1_series_matrix.txt.gz": "ID_REF\tS1\n" + "".join(f"cg{i:08d}\t0.5\n" for i in range(20000)),
    "cell1.cov.gz": "".join(f"chr1\t{100 + 2 * i}\t{100 + 2 * i}\t50\t1\t1\n" for i in range(20000)),
    "all_motif_rmdup.motif.gz": "".join(f">ACGT\tm{i}\t3.0\n0.7 0.1 0.1 0.1\n0.1 0.7 0.1 0.1\n" for i in range(8000)),
    "enhancers.bed.gz": "".join(f"chr1\t{100 * i}\t{100 * i + 50}\n" for i in range(20000)),
}


@pytest.mark.parametrize("name", READERS)
def test_missing_file(refuses, tmp_path, name):
    refuses(lambda: READERS[name](tmp_path / name), FileNotFoundError, name.replace(".", r"\."))


@pytest.mark.parametrize(
    "name",
    [
        "betas.csv",
        "EPIC.csv",
        "cell1.cov.gz",
        "calls.vcf.gz",
        "all_motif_rmdup.motif.gz",
        "enhancers.bed.gz",
        "K562.DNase.bw",
    ],
)
def test_web_page_saved_in_place_of_the_file(refuses, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HTML)
    refuses(lambda: READERS[name](path), ValueError, name.replace(".", r"\."), path)


def test_web_page_saved_in_place_of_a_matlab_table(refuses, tmp_path):
    path = tmp_path / "MotifMatch_human_rmdup.mat"
    path.write_bytes(HTML)
    refuses(lambda: READERS[path.name](path), ValueError, r"MotifMatch_human_rmdup\.mat", path)


@pytest.mark.parametrize("name", ROWS)
def test_truncated_gzip(refuses, tmp_path, name):
    whole = gzip.compress(ROWS[name].encode())
    path = tmp_path / name
    path.write_bytes(whole[: len(whole) // 2])
    refuses(lambda: READERS[name](path), ValueError, rf"{name.replace('.', '[.]')} could not be read.*truncated", path)


def test_truncated_bgzipped_vcf(refuses, tmp_path):
    pysam = pytest.importorskip("pysam")
    plain = tmp_path / "calls.vcf"
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr22,length=51304566>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )
    plain.write_text(header + "".join(f"chr22\t{1000 + 10 * i}\t.\tA\tG\t.\tPASS\t.\n" for i in range(20000)))
    pysam.tabix_compress(str(plain), str(tmp_path / "calls.vcf.gz"))
    path = tmp_path / "calls.vcf.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refuses(lambda: ef.io.read_vcf(path), ValueError, r"calls\.vcf\.gz could not be read", path)


def test_bedmethyl_ambiguous_layout_lists_the_candidates(refuses, tmp_path):
    path = tmp_path / "sample.bedGraph"
    path.write_text("chr1\t100\t101\t50\t1\t1\nchr1\t200\t201\t100\t2\t0\n")
    refuses(lambda: ef.io.read_bedmethyl(path), ValueError, "(?s)bismark_cov.*methyldackel", path)


def test_bedmethyl_duplicate_sample_names(refuses, tmp_path):
    paths = []
    for name in ("a.cov", "b.cov"):
        path = tmp_path / name
        path.write_text("chr1\t100\t100\t50\t1\t1\n")
        paths.append(path)
    refuses(
        lambda: ef.io.read_bedmethyl(paths, format="bismark_cov", sample_names=["s", "s"]),
        ValueError,
        "(?i)sample.*'s'|unique|duplicate",
        *paths,
    )


@pytest.mark.parametrize("bad", [0, -1])
def test_bedmethyl_min_coverage_below_one(refuses, tmp_path, bad):
    path = tmp_path / "a.cov"
    path.write_text("chr1\t100\t100\t50\t1\t1\n")
    refuses(lambda: ef.io.read_bedmethyl(path, format="bismark_cov", min_coverage=bad), ValueError, "min_coverage")


# --- pp: values whose meaning the call cannot take ---


def test_mvalue_of_values_outside_0_1(refuses, betas):
    adata = betas.copy()
    adata.X = adata.X * 10 - 5
    refuses(lambda: ef.pp.to_mvalue(adata), ValueError, r"\[0, 1\]|beta", adata)


def test_sparse_betas_refused_where_zeros_would_read_as_beta_0(refuses, betas):
    adata = betas.copy()
    adata.X = sparse.csr_matrix(np.nan_to_num(adata.X))
    refuses(lambda: ef.pp.to_mvalue(adata), (TypeError, ValueError), "(?i)sparse", adata)


def test_qc_metrics_of_a_layer_that_does_not_exist(refuses, betas):
    refuses(lambda: ef.pp.qc_metrics(betas, layer="raw"), KeyError, "raw", betas)


@pytest.mark.parametrize("option", [{"test_size": 1.5}, {"test_size": -0.1}, {"val_size": 1.0}])
def test_split_fractions_outside_0_1(refuses, betas, option):
    refuses(lambda: ef.pp.split_samples(betas, **option), ValueError, "size", betas)


def test_split_stratify_column_missing(refuses, betas):
    refuses(lambda: ef.pp.split_samples(betas, stratify="tissue"), KeyError, "tissue", betas)


def test_matrix_duplicate_sample_ids(refuses, tmp_path):
    path = tmp_path / "betas.csv"
    path.write_text("ID_REF,S1,S1\ncg00000001,0.1,0.2\ncg00000002,0.3,0.4\n")
    refuses(lambda: ef.io.read_methylation_matrix(path), ValueError, "Duplicated sample names: 'S1'", path)


def test_aggregate_regions_without_count_layers(refuses, betas):
    refuses(lambda: ef.pp.aggregate_regions(betas, regions="100kb"), (KeyError, ValueError), "mc|cov", betas)


def test_aggregate_regions_unknown_bin_size(refuses):
    adata = ef.datasets.imr90_wgbs_chr22()
    refuses(lambda: ef.pp.aggregate_regions(adata, regions="100kbp"), ValueError, "100kbp", adata)


def test_dilute_retention_not_positive(refuses):
    adata = AnnData(X=np.random.default_rng(0).poisson(5, (20, 30)).astype(np.float32))
    adata.layers["counts"] = adata.X.copy()
    refuses(lambda: ef.pp.dilute(adata, 0), ValueError, "retention", adata)


@pytest.fixture
def log_normalised():
    counts = np.random.default_rng(0).poisson(3, (40, 12)).astype(np.float32)
    adata = AnnData(X=counts, obs={"group": ["a", "b"] * 20})
    adata.var_names = [f"TF{i}" for i in range(12)]
    adata.layers["counts"] = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    return adata


def test_multinomial_dilution_beyond_the_integer_type(refuses):
    adata = AnnData(X=np.random.default_rng(0).poisson(50, (6, 40)).astype(np.uint8))
    call = lambda: ef.pp.dilute(adata, 1000, method="multinomial", layer=None)
    refuses(call, ValueError, "stored as uint8.*astype", adata)


def test_dilute_log_normalised_counts(refuses, log_normalised):
    refuses(
        lambda: ef.pp.dilute(log_normalised, 100), ValueError, "look log-transformed.*layer='counts'", log_normalised
    )


def test_tf_context_log_normalised_counts(refuses, log_normalised):
    adata = log_normalised
    call = lambda: ef.pp.tf_context(adata, groupby="group", tfs=list(adata.var_names), min_cells=1)
    refuses(call, ValueError, "`counts` holds fractional values", adata)


def test_raw_counts_accept_estimated_counts():
    ef_counts = np.array([[10.5, 0.0, 230.25], [1.0, 2.0, 3.0]])
    from epiformer._validation import check_raw_counts

    check_raw_counts(ef_counts)  # salmon-style estimated counts: fractional, but not on a log scale
    check_raw_counts(sparse.csr_matrix(np.eye(3) * 4))


def test_motif_scores_empty_region(refuses):
    genome = ef.datasets.hg19_chr22_segment()
    refuses(
        lambda: ef.pp.motif_scores("chr22:20000500-20000100", fasta=genome, tfs=["CTCF"]),
        ValueError,
        "chr22:20000500-20000100",
    )


def test_jaspar_release_not_bundled(refuses):
    refuses(lambda: ef.pp.jaspar_motifs(release="JASPAR1999"), ValueError, "JASPAR1999")


# --- tl / models: sizes, devices, targets, and checkpoints ---


@pytest.mark.parametrize("batch_size", [0, -4])
def test_embed_batch_size_not_positive(refuses, tiny_model, betas, batch_size):
    refuses(lambda: ef.tl.embed(betas, tiny_model, batch_size=batch_size), ValueError, "batch_size", betas)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_embed_on_cuda_without_cuda(refuses, tiny_model, betas):
    refuses(lambda: ef.tl.embed(betas, tiny_model, device="cuda"), (ValueError, RuntimeError), "(?i)cuda", betas)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda betas, model: ef.tl.embed(betas, model, readout="max"), "`readout` must be 'cls' or 'mean', got 'max'"),
        (
            lambda betas, model: ef.tl.pretrain(betas, lr_schedule="linear"),
            "`lr_schedule` must be 'cosine' or 'step', got 'linear'",
        ),
        (
            lambda betas, model: ef.tl.finetune(betas, model, target="age", head="transformer"),
            "`head` must be 'linear', 'mlp' or 'resnet1d', got 'transformer'",
        ),
    ],
)
def test_option_outside_its_choices(refuses, tiny_model, betas, call, message):
    refuses(lambda: call(betas, tiny_model), ValueError, message, betas)


def test_embed_none_of_the_model_cpgs(refuses, betas):
    model = MethylGPT(MethylGPTVocab.from_probes(["cg99999999"]), d_model=16, n_layers=1, n_heads=2)
    refuses(lambda: ef.tl.embed(betas, model), ValueError, "(?i)none of the model", betas)


@pytest.fixture
def baseline(blood):
    with pytest.warns(UserWarning, match="no 'age' value"):
        return ef.tl.fit_baseline(blood[:, :200].copy(), target="age", split_key="none")


def test_predict_with_none_of_the_baseline_cpgs(refuses, baseline, blood):
    other = blood[:, :200].copy()
    other.var_names = [f"cgX{i:07d}" for i in range(other.n_vars)]
    refuses(lambda: ef.tl.predict(other, baseline), ValueError, "None of the baseline's 200 CpGs", other)


def test_predict_on_all_missing_values(refuses, baseline, blood):
    empty = blood[:, :200].copy()
    empty.X = np.full(empty.shape, np.nan, dtype=np.float32)
    refuses(lambda: ef.tl.predict(empty, baseline), ValueError, "Every value of the baseline's CpGs", empty)


def test_fit_baseline_on_all_missing_values(refuses, blood):
    empty = blood[:, :200].copy()
    empty.X = np.full(empty.shape, np.nan, dtype=np.float32)
    call = lambda: ef.tl.fit_baseline(empty, target="age", split_key="none")
    with pytest.warns(UserWarning, match="no 'age' value"):
        refuses(call, ValueError, "Every value of the training samples", empty)


def test_embed_on_all_missing_values(refuses, tiny_model, betas):
    empty = betas.copy()
    empty.X = np.full(empty.shape, np.nan, dtype=np.float32)
    refuses(lambda: ef.tl.embed(empty, tiny_model), ValueError, "Every value of the model's", empty)


def test_baseline_target_missing(refuses, blood):
    refuses(lambda: ef.tl.fit_baseline(blood, target="bmi"), KeyError, "bmi", blood)


def test_baseline_constant_target(refuses, blood):
    adata = blood.copy()
    adata.obs["age"] = 40.0
    refuses(lambda: ef.tl.fit_baseline(adata, target="age", split_key="none"), ValueError, "constant", adata)


def test_finetune_single_class(refuses, tiny_model, betas):
    adata = betas.copy()
    adata.obs["disease"] = "control"
    refuses(lambda: ef.tl.finetune(adata, tiny_model, target="disease"), ValueError, "single class", adata)


def test_pretrain_mask_ratio_outside_0_1(refuses, betas):
    refuses(lambda: ef.tl.pretrain(betas, mask_ratio=1.5, progress=False), ValueError, "mask_ratio", betas)


def test_from_pretrained_missing_folder(refuses, tmp_path):
    refuses(lambda: MethylGPT.from_pretrained(tmp_path / "nowhere"), FileNotFoundError, "nowhere")


def test_from_pretrained_truncated_weights(refuses, saved_model):
    weights = saved_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "model.safetensors", saved_model, weights)


def test_from_pretrained_web_page_in_place_of_weights(refuses, saved_model):
    weights = saved_model / "model.safetensors"
    weights.write_bytes(HTML)
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "model.safetensors", weights)


def test_from_pretrained_config_not_json(refuses, saved_model):
    config = saved_model / "config.json"
    config.write_text("{'d_model': 16,")
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "config.json", config)


def test_from_pretrained_config_missing(refuses, saved_model):
    (saved_model / "config.json").unlink()  # the head count is in no other file: a default would be a guess
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "n_heads=", saved_model)


def test_from_pretrained_vocabulary_disagrees_with_weights(refuses, saved_model):
    vocab = saved_model / "vocab.json"
    stoi = json.loads(vocab.read_text())
    stoi["cg12345678"] = max(stoi.values()) + 1
    vocab.write_text(json.dumps(stoi))
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "(?i)vocab", vocab)


def test_from_pretrained_config_disagrees_with_weights(refuses, saved_model):
    config = saved_model / "config.json"
    meta = json.loads(config.read_text())
    meta["sha256"] = "0" * 64
    config.write_text(json.dumps(meta))
    refuses(lambda: MethylGPT.from_pretrained(saved_model), ValueError, "(?i)sha256|changed|damaged", config)


def test_from_pretrained_nan_weights(refuses, tiny_model, tmp_path):
    with torch.no_grad():
        next(tiny_model.parameters())[0] = float("nan")
    tiny_model.save_pretrained(tmp_path / "diverged")
    weights = tmp_path / "diverged" / "model.safetensors"
    refuses(lambda: MethylGPT.from_pretrained(tmp_path / "diverged"), ValueError, "NaN or infinite weights", weights)


@pytest.mark.skipif(
    not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"), reason="Lightning checkpoints need torch>=2.5"
)
def test_lightning_checkpoint_with_infinite_weights(refuses, tmp_path):
    weight = torch.zeros(4, 4, 3)
    weight[1, 2, 0] = float("inf")
    path = tmp_path / "epoch=3.ckpt"
    torch.save({"state_dict": {"convmodule.conv1.weight": weight}, "epoch": 3}, path)
    refuses(lambda: EpiGePT.from_pretrained(path), ValueError, r"NaN or infinite weights.*conv1\.weight \(1\)", path)


def test_nonfinite_outputs_are_warned_and_counted(tiny_model, betas):
    with torch.no_grad():
        tiny_model.encoder.embedding.weight.fill_(float("inf"))
    with pytest.warns(UserWarning, match=r"are NaN or infinite.*n_nonfinite"):
        ef.tl.embed(betas, tiny_model)
    n = int((~np.isfinite(betas.obsm["X_methylgpt"])).sum())
    assert n > 0 and betas.uns["methylgpt"]["n_nonfinite"] == {"obsm['X_methylgpt']": n}


def test_vocab_with_duplicate_probes(refuses):
    refuses(lambda: MethylGPTVocab.from_probes(["cg00000001", "cg00000001"]), ValueError, "cg00000001")


def test_predict_without_a_fitted_predictor(refuses, betas):
    refuses(lambda: ef.tl.predict(betas, object()), TypeError, "(?i)predictor", betas)


def test_evaluate_truth_column_missing(refuses, betas):
    adata = betas.copy()
    adata.obs["pred"] = 1.0
    refuses(lambda: ef.tl.evaluate(adata, truth="age", pred="pred", split=None), KeyError, "age", adata)


def test_the_helper_sees_a_changed_input(refuses, betas):
    """`refuses` itself fails when a refused call changed what it was handed."""

    def mutate_then_raise():
        betas.obs["touched"] = 1
        raise ValueError("refused")

    with pytest.raises(AssertionError):
        refuses(mutate_then_raise, ValueError, "refused", betas)
