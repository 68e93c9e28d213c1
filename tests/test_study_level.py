"""Study-level evaluation rows beside the clip-level ones, and the serial-change metric, on constructed
embeddings whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from echo_pipeline.evaluation import suite
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.study_level import add_study_level, study_level
from echo_pipeline.metrics.serial_change import same_patient_pairs, spearman_rho
from test_eval_tables import BOOT, LINEAGE, N_STUDIES, PROMPTS, make_cohort, perfect_embeddings


def test_same_patient_pairs_and_spearman():
    first, second = same_patient_pairs(np.array(["a", "b", "a", None, "a", "b"], dtype=object))
    assert sorted(zip(first.tolist(), second.tolist())) == [(0, 2), (0, 4), (1, 5), (2, 4)]
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman_rho([1, 2], [1, 2])) and np.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))


def test_study_level_rows_sit_beside_clip_rows_and_leave_the_summary_at_clip_level():
    cohort = make_cohort()
    emb = perfect_embeddings(cohort)
    result = suite.evaluate_model(cohort, emb, PROMPTS, LINEAGE, BOOT)
    difference, similarity, rho = add_study_level(result, cohort, emb, PROMPTS, LINEAGE, BOOT, sample_seed=0,
                                                  n_pairs=1000)
    for name in ("eval_retrieval", "eval_classification", "eval_regression", "eval_patient_identification"):
        assert {row["level"] for row in result.rows[name]} == {"clip", "study"}, name
    retrieval = pd.DataFrame(result.rows["eval_retrieval"]).set_index(["level", "metric"])
    assert retrieval.loc[("study", "mcmrr"), "value"] == 1.0 and retrieval.loc[("study", "mcmrr"), "n"] == N_STUDIES
    patients = pd.DataFrame(result.rows["eval_patient_identification"])
    serial = patients[patients["metric"] == "spearman_lvef_difference_similarity"]
    assert serial["level"].tolist() == ["study"] and serial["n"].item() == difference.size == 6  # 2 studies each
    # Each study has its own axis: every pair of studies has similarity 0, so ρ is undefined.
    assert np.allclose(similarity, 0) and np.isnan(rho)
    frames = {name: pd.DataFrame(rows) for name, rows in result.rows.items() if name != "eval_summary"}
    [summary] = T.summary_rows(frames, "base_prompts")
    clip_mcmrr = retrieval.loc[("clip", "mcmrr"), "value"]
    assert summary["mcmrr"] == clip_mcmrr


def test_study_vectors_are_the_mean_of_their_clips():
    cohort = make_cohort()
    emb = perfect_embeddings(cohort)
    studies, study_emb = study_level(cohort, emb)
    assert studies.clips["study_instance_uid"].tolist() == sorted(cohort.clips["study_instance_uid"].unique())
    assert (studies.clips["sop_instance_uid"] == studies.clips["study_instance_uid"]).all()
    assert study_emb.frames.shape == (N_STUDIES, 1, study_emb.clips.shape[1]) and (study_emb.n_frames == 1).all()
    first = cohort.clips.drop_duplicates("study_instance_uid").index
    pd.testing.assert_frame_equal(studies.labels, cohort.labels.loc[first].reset_index(drop=True))


def test_subgroups_score_big_groups_and_flag_small_ones():
    from echo_pipeline.evaluation.subgroups import DIMENSIONS, subgroup_of, subgroup_rows

    cohort = make_cohort()
    n = len(cohort.clips)
    attributes = pd.DataFrame({"sop_instance_uid": cohort.clips["sop_instance_uid"],
                               "age_band": ["60-69"] * (n - 4) + ["90+"] * 4, "sex": ["F", "M"] * (n // 2),
                               "manufacturer": [None] * n, "crop_side": np.arange(n, dtype=float)})
    groups = subgroup_of(cohort.clips, attributes)
    assert set(groups["manufacturer"]) == {"unknown"}
    assert groups["image_quality"].value_counts().to_dict() == {"low": 8, "middle": 8, "high": 8}
    emb = perfect_embeddings(cohort)
    rows = pd.DataFrame(subgroup_rows(cohort, groups, {"trained": emb}, {"trained": LINEAGE}, PROMPTS, BOOT,
                                      "base_prompts", min_studies=6))
    assert set(rows["dimension"]) == set(DIMENSIONS)
    old = rows[(rows["dimension"] == "age_band") & (rows["subgroup"] == "90+")]
    assert old["too_small"].all() and old["value"].isna().all() and (old["n_studies"] == 2).all()
    big = rows[(rows["dimension"] == "age_band") & (rows["subgroup"] == "60-69")].set_index("metric")
    assert not big["too_small"].any() and big.loc["mcmrr", "value"] == 1.0 and big.loc["mcmrr", "n_studies"] == 10
    assert big.loc["tavr_auc", "ci_low"] <= big.loc["tavr_auc", "value"] <= big.loc["tavr_auc", "ci_high"]


def test_age_band_comes_from_patient_age_or_the_dates_and_never_keeps_the_birth_date():
    import datetime as dt

    from pydicom.dataset import Dataset

    from echo_pipeline.ingest.header import instance_fields

    def header(**tags):
        ds = Dataset()
        ds.StudyDate = "20200615"
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        return instance_fields(ds, b"k")

    assert header(PatientAge="063Y", PatientBirthDate="19000101")["age_band"] == "60-69"  # the tag wins
    assert header(PatientAge="018M")["age_band"] == "0-9"
    born = header(PatientBirthDate="19500616", PatientSex="F")
    assert born["age_band"] == "60-69" and born["patient_sex"] == "F"  # one day short of 70
    assert header(PatientBirthDate="19200101")["age_band"] == "90+"
    assert header(PatientBirthDate="garbage", PatientSex="X") | {} == header() | {"patient_sex": None}
    assert header()["age_band"] is None
    assert not any(isinstance(v, dt.date) and v.year == 1950 for v in born.values())
    assert "19500616" not in repr(born)
