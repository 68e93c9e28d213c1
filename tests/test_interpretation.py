"""Looking inside: UMAP of the test embeddings and PromptCAM saliency, as core functions and as assets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_pipeline.interpretation import plots
from echo_pipeline.interpretation.umap_projection import UmapSettings, project
from test_eval_tables import build_data_root

PNG = b"\x89PNG\r\n\x1a\n"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.slow  # umap-learn compiles its numba kernels on first use (about a minute on 2 busy cores)
def test_umap_keeps_clusters_apart_is_seeded_and_caps_neighbours():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(2, 32)))
    vectors = _unit(np.repeat(centres, 15, axis=0) + 0.05 * rng.normal(size=(30, 32)))
    xy, neighbours = project(vectors, UmapSettings(seed=3))
    assert xy.shape == (30, 2) and neighbours == 29  # 200 capped below n
    a, b = xy[:15], xy[15:]
    within = max(np.ptp(a, axis=0).max(), np.ptp(b, axis=0).max())
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > within  # two clusters in 512-D stay two clusters in 2-D
    np.testing.assert_array_equal(project(vectors, UmapSettings(seed=3))[0], xy)


def test_device_category_and_panels():
    frame = pd.DataFrame({"pacemaker": [True, False, None, False], "tavr": [None, False, None, True],
                          "mitraclip": [None, False, None, None]})
    assert plots.device_category(frame).tolist() == ["pacemaker", "none", "unknown", "tavr"]
    frame = frame.assign(umap_x=[0.0, 1, 2, 3], umap_y=[3.0, 2, 1, 0], lvef=[55.0, None, 30, 60],
                         lv_dilation=["none", "severe", None, "mild"])
    assert plots.umap_panels(frame, "four clips")[:8] == PNG


def test_assets_write_umap_and_saliency_tables_with_figures(tmp_path):
    import dagster as dg
    import duckdb

    from assets.interpretation import embedding_umap, prompt_saliency
    from resources import PipelineResource

    store, record = build_data_root(tmp_path / "out", np.random.default_rng(0))
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "reports.csv"),
                                data_root=str(store.path))
    result = dg.materialize([embedding_umap, prompt_saliency], partition_key="bpe",
                            resources={"pipeline": resource})
    assert result.success
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    umap = con.execute("SELECT * FROM embedding_umap ORDER BY sop_instance_uid").df()
    assert len(umap) == 8 and set(umap["n_neighbors"]) == {7} and set(umap["model_id"]) == {record.model_id}
    assert umap[["umap_x", "umap_y"]].notna().all().all()
    labels = con.execute("SELECT l.lvef, l.pacemaker FROM report_labels AS l JOIN embedding_umap AS u "
                         "USING (report_id) ORDER BY u.sop_instance_uid").df()
    assert umap["lvef"].tolist() == labels["lvef"].tolist()  # the labels joined are the study report's

    saliency = con.execute("SELECT * FROM prompt_saliency").df()
    assert set(saliency["task"]) == {"pacemaker", "tavr", "mitraclip", "severe_lv_dilation", "moderate_lv_dilation",
                                     "severe_la_dilation", "moderate_la_dilation", "severe_rv_dilation",
                                     "moderate_rv_dilation", "severe_ra_dilation", "moderate_ra_dilation"}
    per_task = saliency.groupby("task")["rank_kind"].value_counts().unstack()
    assert (per_task["highest"] == 2).all() and (per_task["lowest"] == 2).all()
    top = saliency[saliency["rank_kind"] == "highest"].set_index(["task", "rank"])["score"]
    bottom = saliency[saliency["rank_kind"] == "lowest"].set_index(["task", "rank"])["score"]
    assert (top.xs(1, level="rank") >= bottom.xs(1, level="rank")).all()
    assert set(saliency["frame"]) <= {0, 2, 4, 6, 8}  # 10-frame clips: the embedded frames
    for image in saliency["image_file"].unique():
        assert (store.path / image).read_bytes()[:8] == PNG
    metadata = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
                for e in result.get_asset_materialization_events()}
    assert "data:image/png;base64," in metadata["embedding_umap"]["umap"].value
    assert "data:image/png;base64," in metadata["prompt_saliency"]["prompt_saliency_pacemaker"].value
    assert metadata["prompt_saliency"]["layer"].value.startswith("visual.trunk.stages.")


def test_explain_command_writes_the_overlay_and_refuses_unknown_clips(tmp_path, capsys):
    from echo_pipeline_cli import main

    store, _ = build_data_root(tmp_path / "out", np.random.default_rng(1))
    out = tmp_path / "explained" / "s00.png"
    args = ["explain", "--clip", "s00.0", "--prompt", "A PACEMAKER LEAD IS SEEN IN THE RIGHT HEART.",
            "--data-root", str(store.path), "--device", "cpu", "-o", str(out)]
    assert main(args) == 0
    assert out.read_bytes()[:8] == PNG and "cosine similarity" in capsys.readouterr().out
    assert main(args[:-2] + ["--frame", "3", "-o", str(out)]) == 0 and "frame 3" in capsys.readouterr().out
    assert main(["explain", "--clip", "nope", "--prompt", "x", "--data-root", str(store.path), "-o", str(out)]) == 2
    assert "masked_clips" in capsys.readouterr().err


def test_explain_a_dicom_file_masks_it_on_the_fly(tmp_path, capsys):
    import pyarrow.parquet as pq

    from echo_pipeline.synth.cohort import generate_cohort
    from echo_pipeline_cli import main

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, patients=2, seed=3, workers=1, progress=False)
    truth = pq.read_table(cohort / "truth" / "clips.parquet").to_pandas()
    a4c = truth[(truth.view == "A4C") & ~truth.is_colour].iloc[0]
    store, _ = build_data_root(tmp_path / "out", np.random.default_rng(2))
    out = tmp_path / "dicom.png"
    assert main(["explain", "--dicom", str(cohort / "dicom" / a4c.relative_path), "--prompt",
                 "NO DEVICE LEADS ARE SEEN.", "--data-root", str(store.path), "--device", "cpu", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and "layer visual.trunk.stages." in capsys.readouterr().out
    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("not a DICOM file")
    assert main(["explain", "--dicom", str(not_dicom), "--prompt", "x", "--data-root", str(store.path),
                 "-o", str(out)]) == 2
