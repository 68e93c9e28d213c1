"""Evaluation metric core: hand-computed values on small fixed inputs, plus brute-force cross-checks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from echo_pipeline.errors import EvaluationError, InputContractError
from echo_pipeline.evaluation import binary_truths, load_prompts, regression_truths, sample_prompt_rows
from echo_pipeline.metrics import (
    binary_metrics,
    bootstrap_auc,
    bootstrap_ci,
    mcmrr,
    metrics_from_pairs,
    pair_similarities,
    patient_identification_metrics,
    predict_from_embeddings,
    predict_from_similarities,
    recall_at_k,
    regression_metrics,
    retrieval_metrics,
    retrieval_ranks,
    roc_auc,
    sample_pairs,
    top_fraction_count,
    training_mean_baseline,
    weighted_auc,
    youden_operating_point,
    zero_shot_scores,
)
from echo_pipeline.metrics.patient_identification import (
    PAIR_DIFFERENT_PATIENT,
    PAIR_SAME_PATIENT_OTHER_DATE,
    PAIR_SAME_PATIENT_SAME_DAY,
)

# Labels-table columns named in the evaluation issue.
LABEL_COLUMNS = {
    "lvef",
    "pasp",
    "pacemaker",
    "tavr",
    "mitraclip",
    "lv_dilation",
    "la_dilation",
    "rv_dilation",
    "ra_dilation",
    "lvh",
    "effusion",
    "tamponade",
    # the paper's further tasks (issue 18)
    "impella",
    "atrial_fibrillation",
    "right_atrial_pressure",
    "normal_lv_wall_thickness",
    "no_significant_valvular_disease",
}

# 6 items: positives score 0.9, 0.5, 0.7; negatives 0.5, 0.1, 0.3 (one tie across classes).
TRUTH = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
SCORES = np.array([0.9, 0.5, 0.5, 0.1, 0.7, 0.3])


def _unit(rows) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _brute_auc(truth, scores) -> float:
    pos, neg = scores[truth], scores[~truth]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# --- AUC and Youden --------------------------------------------------------------------------------------


def test_auc_hand_computed_with_cross_class_tie():
    # pairs won: 0.9 → 3, 0.7 → 3, 0.5 → 2 wins + 1 tie (0.5) = 8.5 of 9
    assert roc_auc(TRUTH, SCORES) == pytest.approx(8.5 / 9)


def test_auc_edge_cases():
    assert roc_auc([1, 0], [1.0, 0.0]) == 1.0
    assert roc_auc([1, 0], [0.0, 1.0]) == 0.0
    assert roc_auc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.2, 0.4]))
    with pytest.raises(EvaluationError):
        roc_auc(np.array([1.0, np.nan]), [0.2, 0.4])
    with pytest.raises(EvaluationError):
        roc_auc([1, 2], [0.2, 0.4])


def test_auc_matches_pairwise_definition_on_heavily_tied_data():
    rng = np.random.default_rng(3)
    truth = rng.random(300) < 0.3
    scores = np.round(rng.normal(truth * 0.7, 1.0), 1)  # rounding creates many ties
    assert roc_auc(truth, scores) == pytest.approx(_brute_auc(truth, scores), abs=1e-12)


def test_youden_ties_pick_highest_threshold():
    # thresholds 0.9/0.7/0.5/0.3/0.1 give J = 1/3, 2/3, 2/3, 1/3, 0: 0.7 and 0.5 tie, 0.7 wins.
    op = youden_operating_point(TRUTH, SCORES)
    assert op.threshold == 0.7
    assert op.sensitivity == pytest.approx(2 / 3)
    assert op.specificity == 1.0
    assert op.youden_j == pytest.approx(2 / 3)


def test_youden_counts_tied_scores_as_positive_at_threshold():
    # threshold 0.5 calls all three 0.5 cases positive (sens 1, spec 2/3, J 2/3); splitting the tie run
    # after the two positives would wrongly give spec 1
    op = youden_operating_point([1, 1, 0, 0, 0], [0.5, 0.5, 0.5, 0.1, 0.1])
    assert (op.threshold, op.sensitivity) == (0.5, 1.0)
    assert op.specificity == pytest.approx(2 / 3)


def test_binary_metrics_reports_prevalence_and_counts():
    m = binary_metrics(TRUTH, SCORES)
    assert m["n"] == 6 and m["n_positive"] == 3 and m["prevalence"] == 0.5
    assert m["auc"] == pytest.approx(8.5 / 9) and m["threshold"] == 0.7


def test_zero_shot_scores_average_over_frames_and_prompts():
    frames = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one clip, two frames
    prompts = np.array([[1.0, 0.0], [0.6, 0.8]])
    # frame 0: 1.0, 0.6; frame 1: 0.0, 0.8 → mean 0.6
    assert zero_shot_scores(frames, prompts) == pytest.approx([0.6])
    assert zero_shot_scores(frames[:, 0], prompts) == pytest.approx([0.8])


# --- Retrieval ranks -------------------------------------------------------------------------------------

# Entries in {0, ±0.5, ±1} make every dot product exact, so ties are real ties.
IMAGES = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 0], [0, 0, 0, 1]])
TEXTS = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, -0.5], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]])


def test_ranks_hand_computed_with_ties_in_true_items_favour():
    # image 1: true 0.5; text 3 scores 1.0 (higher), texts 0 and 2 tie at 0.5 → rank 2
    np.testing.assert_array_equal(retrieval_ranks(IMAGES, TEXTS), [1, 2, 1, 1])
    # text 3: true 0.5; image 1 scores 1.0 (higher), images 0 and 2 tie → rank 2
    np.testing.assert_array_equal(retrieval_ranks(TEXTS, IMAGES), [1, 1, 1, 2])
    np.testing.assert_array_equal(retrieval_ranks(IMAGES, TEXTS, chunk_rows=1), [1, 2, 1, 1])


def test_retrieval_metrics_hand_computed():
    m = retrieval_metrics(IMAGES, TEXTS, ks=(1, 2))
    assert m["image_to_report_mean_rank"] == 1.25 and m["report_to_image_mean_rank"] == 1.25
    assert m["image_to_report_median_rank"] == 1.0
    assert m["image_to_report_recall_at_1"] == 0.75 and m["image_to_report_recall_at_2"] == 1.0
    assert m["mcmrr"] == 1.25 and m["n"] == 4


def test_recall_at_k_and_mcmrr():
    ranks = np.array([1, 3, 5, 10, 11])
    assert [recall_at_k(ranks, k) for k in (1, 5, 10)] == [0.2, 0.6, 0.8]
    assert mcmrr(np.array([1, 3]), np.array([5, 7])) == 4.0


def test_ranks_match_full_sort_on_random_embeddings():
    rng = np.random.default_rng(0)
    img = _unit(rng.normal(size=(300, 16))).astype(np.float32)
    txt = _unit(img + 0.8 * rng.normal(size=img.shape)).astype(np.float32)
    sims = img @ txt.T
    expected = 1 + np.argmax(np.argsort(-sims, axis=1) == np.arange(300)[:, None], axis=1)
    np.testing.assert_array_equal(retrieval_ranks(img, txt, chunk_rows=37), expected)


def test_ranks_refuse_unnormalised_or_mismatched_input():
    with pytest.raises(EvaluationError, match="not L2-normalised"):
        retrieval_ranks(IMAGES * 2, TEXTS)
    with pytest.raises(EvaluationError, match="same shape"):
        retrieval_ranks(IMAGES, TEXTS[:3])


# --- Regression ------------------------------------------------------------------------------------------


def test_top_fraction_count_rounds_half_up():
    assert top_fraction_count(101, 0.2) == 20
    assert top_fraction_count(5, 0.4) == 2
    assert top_fraction_count(10, 0.25) == 3
    assert top_fraction_count(3, 0.1) == 1


def test_top_fraction_median_rule_hand_worked():
    values = np.array([10, 20, 30, 40, 50])
    sims = np.array(
        [
            [
                [0.1, 0.9, 0.5, 0.9, 0.2],  # frame 0 ranks 20 (tie with 40, smaller value first), 40, 30
                [0.8, 0.1, 0.2, 0.3, 0.7],  # frame 1 ranks 10, 50, 40
            ]
        ]
    )
    # k = 1: mean over frames of (20, 10) = 15
    assert predict_from_similarities(sims, values, top_fraction=0.2) == pytest.approx([15.0])
    # k = 2: positions (15, 45) → median 30
    assert predict_from_similarities(sims, values, top_fraction=0.4) == pytest.approx([30.0])
    # k = 3: positions (15, 45, 35) → median 35
    assert predict_from_similarities(sims, values, top_fraction=0.6) == pytest.approx([35.0])
    # the column order of the candidates does not matter, ties still go to the smaller value
    perm = np.array([3, 0, 4, 2, 1])
    assert predict_from_similarities(sims[..., perm], values[perm], top_fraction=0.2) == pytest.approx([15.0])


def test_predict_from_embeddings_averages_prompt_variants():
    rng = np.random.default_rng(1)
    frames = _unit(rng.normal(size=(7, 4, 8)))
    prompts = _unit(rng.normal(size=(11, 3, 8)))  # 11 values × 3 variants
    values = np.arange(0, 110, 10)
    expected = predict_from_similarities(np.einsum("nfd,vkd->nfv", frames, prompts) / 3, values)
    got = predict_from_embeddings(frames, prompts, values, chunk_clips=3)
    np.testing.assert_allclose(got, expected)


def test_regression_metrics_hand_computed():
    truth = np.array([60, 45, 35, 25])
    pred = np.array([55, 50, 30, 40])
    m = regression_metrics(truth, pred, below_thresholds=(50, 40, 30))
    assert m["mae"] == 7.5 and m["n"] == 4
    assert m["auc_below_50"] == 1.0 and m["auc_below_40"] == 1.0
    assert m["auc_below_30"] == pytest.approx(2 / 3)  # truth 25 predicted 40 loses to truth 35 predicted 30


def test_training_mean_baseline():
    np.testing.assert_array_equal(training_mean_baseline(np.array([50, 60, np.nan, 70]), 3), [60, 60, 60])
    with pytest.raises(EvaluationError):
        training_mean_baseline(np.array([np.nan]), 3)


# --- Bootstrap -------------------------------------------------------------------------------------------


def _separable_data(n=400, seed=5):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.25
    return truth, np.round(rng.normal(truth * 1.0, 1.0), 2)


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    truth, scores = _separable_data()
    a = bootstrap_ci(roc_auc, truth, scores, n_resamples=200, seed=7)
    b = bootstrap_ci(roc_auc, truth, scores, n_resamples=200, seed=7)
    c = bootstrap_ci(roc_auc, truth, scores, n_resamples=200, seed=8)
    assert a == b and a != c
    assert a.low < a.estimate < a.high and a.n_valid == 200
    assert a.estimate == roc_auc(truth, scores)


def test_vectorised_auc_bootstrap_matches_generic_loop():
    truth, scores = _separable_data()
    loop = bootstrap_ci(roc_auc, truth, scores, n_resamples=150, seed=11)
    fast = bootstrap_auc(truth, scores, n_resamples=150, seed=11)
    assert fast.estimate == loop.estimate
    assert fast.low == pytest.approx(loop.low, abs=1e-12) and fast.high == pytest.approx(loop.high, abs=1e-12)


def test_grouped_bootstrap_resamples_whole_groups():
    truth, scores = _separable_data(n=120)
    groups = np.repeat(np.arange(40), 3)
    sizes = bootstrap_ci(lambda g: float(len(g)), groups, groups=groups, n_resamples=20)
    assert sizes.low == sizes.high == 120  # 40 groups of 3 drawn each time
    loop = bootstrap_ci(roc_auc, truth, scores, groups=groups, n_resamples=100, seed=2)
    fast = bootstrap_auc(truth, scores, groups=groups, n_resamples=100, seed=2)
    assert fast.low == pytest.approx(loop.low, abs=1e-12) and fast.high == pytest.approx(loop.high, abs=1e-12)


def test_weighted_auc_equals_auc_on_repeated_rows():
    weights = np.array([[2, 0, 1, 3, 1, 1], [1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1]])
    expected = [roc_auc(np.repeat(TRUTH, w), np.repeat(SCORES, w)) for w in weights]
    np.testing.assert_allclose(weighted_auc(TRUTH, SCORES, weights), expected)


# --- Patient identification ------------------------------------------------------------------------------


def test_patient_identification_all_pairs_hand_computed():
    patients = ["A", "A", "A", "B", "C"]
    dates = ["2020-01-01", "2020-01-01", "2021-06-01", "2020-01-01", None]
    emb = _unit([[1, 0], [1, 0], [0.6, 0.8], [0, 1], [-1, 0]])
    pairs = sample_pairs(patients, dates, n_pairs=100)
    assert len(pairs.first) == 10
    keys = zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)
    types = dict(zip(keys, pairs.pair_type.tolist(), strict=True))
    assert types[(0, 1)] == PAIR_SAME_PATIENT_SAME_DAY
    assert types[(0, 2)] == types[(1, 2)] == PAIR_SAME_PATIENT_OTHER_DATE
    assert sum(t == PAIR_DIFFERENT_PATIENT for t in types.values()) == 7
    m = patient_identification_metrics(emb, patients, dates, n_pairs=100)
    assert m["mean_similarity_same_patient_same_day"] == pytest.approx(1.0)
    assert m["mean_similarity_same_patient_other_date"] == pytest.approx(0.6)
    # different-patient sims: 0, -1 (rows 0 and 1 vs 3, 4), 0.8, -0.6 (row 2 vs 3, 4), 0 (3 vs 4) → mean -1.8/7
    assert m["mean_similarity_different_patient"] == pytest.approx(-1.8 / 7)
    # same-patient sims 1, 0.6, 0.6 vs different: 0.6 < 0.8 loses twice, everything else wins → 19/21
    assert m["auc_same_patient"] == pytest.approx(19 / 21)


def test_patient_pairs_sampled_when_large():
    rng = np.random.default_rng(4)
    patients = np.repeat(np.arange(50), 4)
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 3, 200), unit="D")
    pairs = sample_pairs(patients, dates, n_pairs=500, seed=9)
    same = pairs.pair_type != PAIR_DIFFERENT_PATIENT
    assert same.sum() == 50 * 6  # all within-patient pairs enumerated
    assert (~same).sum() == 500
    assert np.all(patients[pairs.first][~same] != patients[pairs.second][~same])
    assert np.all(pairs.first < pairs.second)
    again = sample_pairs(patients, dates, n_pairs=500, seed=9)
    np.testing.assert_array_equal(pairs.first, again.first)
    emb = _unit(rng.normal(size=(200, 8)))
    m = metrics_from_pairs(pair_similarities(emb, pairs), pairs.pair_type)
    assert m["n_pairs_different_patient"] == 500


# --- Prompts file ----------------------------------------------------------------------------------------


def test_prompts_file_loads_and_maps_every_task_to_a_label_column():
    p = load_prompts()
    assert p.version and len(p.sha256) == 64
    assert {t.label for t in p.binary_tasks.values()} <= LABEL_COLUMNS
    assert {t.label for t in p.regression_tasks.values()} <= LABEL_COLUMNS
    expected = {"pacemaker", "tavr", "mitraclip", "tamponade", "severe_lvh", "large_effusion"}
    assert expected <= set(p.binary_tasks)
    assert all(len(t.prompts) >= 2 for t in p.binary_tasks.values())
    lvef = p.regression_tasks["lvef"]
    assert lvef.values == tuple(range(101)) and lvef.below_thresholds == (50.0, 40.0, 30.0)
    assert "IS ESTIMATED TO BE 42%" in lvef.prompt_texts()[42][0]
    assert p.sampled.per_regression_value == 10 and p.sampled.per_binary_task == 200


def _labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lvef": [55.0, None, 30.0, 62.4],
            "pasp": [30.0, 45.0, None, None],
            "pacemaker": pd.array([True, False, None, False], dtype="boolean"),
            "tavr": [False, False, True, None],
            "mitraclip": [0, 0, 0, 1],
            "lv_dilation": ["severe", None, "none", "moderate"],
            "la_dilation": ["mild", "mild", None, "severe"],
            "rv_dilation": [None, None, None, None],
            "ra_dilation": ["none", "none", "none", "none"],
            "lvh": ["none", "mild", "moderate", "severe"],
            "effusion": ["none", "small", "large", None],
            "tamponade": [False, False, True, False],
            "impella": [False, None, True, False],
            "atrial_fibrillation": [True, False, None, False],
            "right_atrial_pressure": ["normal", "elevated", "significantly_elevated", None],
            "normal_lv_wall_thickness": [True, False, False, False],
            "no_significant_valvular_disease": [None, True, False, True],
        }
    )


def test_binary_and_regression_truths_exclude_unknowns():
    p = load_prompts()
    truths = binary_truths(_labels(), p)
    assert set(truths) == set(p.binary_tasks)
    np.testing.assert_array_equal(truths["pacemaker"].rows, [0, 1, 3])
    np.testing.assert_array_equal(truths["pacemaker"].truth, [True, False, False])
    np.testing.assert_array_equal(truths["severe_lv_dilation"].rows, [0, 2, 3])
    np.testing.assert_array_equal(truths["severe_lv_dilation"].truth, [True, False, False])
    np.testing.assert_array_equal(truths["mitraclip"].truth, [False, False, False, True])
    assert truths["severe_rv_dilation"].rows.size == 0
    np.testing.assert_array_equal(truths["large_effusion"].truth, [False, False, True])
    np.testing.assert_array_equal(truths["elevated_right_atrial_pressure"].rows, [0, 1, 2])
    np.testing.assert_array_equal(truths["elevated_right_atrial_pressure"].truth, [False, True, True])
    np.testing.assert_array_equal(truths["significantly_elevated_right_atrial_pressure"].truth, [False, False, True])
    reg = regression_truths(_labels(), p)
    np.testing.assert_array_equal(reg["lvef"].rows, [0, 2, 3])
    np.testing.assert_array_equal(reg["lvef"].truth, [55.0, 30.0, 62.4])
    rows = sample_prompt_rows(_labels(), p)
    np.testing.assert_array_equal(rows["lvef"], [0, 2, 3])
    np.testing.assert_array_equal(rows["tavr"], [2])


def test_labels_outside_declared_levels_are_refused():
    labels = _labels()
    labels.loc[1, "lvh"] = "trace"
    with pytest.raises(InputContractError, match="'lvh'.*trace"):
        binary_truths(labels, load_prompts())
    with pytest.raises(InputContractError, match="column 'tamponade'"):
        binary_truths(_labels().drop(columns=["tamponade"]), load_prompts())


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("version: 2\n", "", "'version'"),
        (
            "    label: lvh\n    positive: [severe]",
            "    label: lvh\n    positive: [huge]",
            "severe_lvh.positive",
        ),
        ("BE {value}%.", "BE 5%.", "lvef.templates[0]"),
        ("  label: tavr\n", "  label: tavi\n", "tavr.label"),
    ],
)
def test_broken_prompts_file_errors_name_file_and_key(tmp_path: Path, old: str, new: str, key: str):
    text = load_prompts().path.read_text()
    assert old in text
    broken = tmp_path / "prompts.yaml"
    broken.write_text(text.replace(old, new, 1))
    with pytest.raises(InputContractError) as err:
        load_prompts(broken)
    assert str(broken) in str(err.value) and key in str(err.value)
