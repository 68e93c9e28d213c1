"""Tokenizers: normalisation, number codec, learned template vocabulary, BPE snippets, open_clip pooling, stats.

The corpus is real synthetic report text (echo_pipeline.synth.report_text) for random studies; the template
vocabulary is learned from a patient-level training split and scored on held-out patients.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from echo_pipeline import schemas
from echo_pipeline.errors import EmbeddingError, VocabularyError
from echo_pipeline.pooling import pool_texts
from echo_pipeline.synth.report_text import render_report
from echo_pipeline.tokenizers import (
    BpeTokenizer,
    TemplateTokenizer,
    bpe_length,
    bpe_snippets,
    bpe_token_rows,
    evaluation_texts,
    learn_vocabulary,
    load_vocabulary,
    make_tokenizer,
    normalise_sentence,
    normalised_sentences,
    save_vocabulary,
    split_sentences,
    template_token_rows,
    tokenizer_stats,
    training_snippet,
    unknown_sentence_rows,
)
from echo_pipeline.tokenizers import layout as L
from echo_pipeline.tokenizers.protocol import EvaluationTexts, ReportTokenizer, TextPolicy
from echo_pipeline.tokenizers.layout import templatise

SEVERITIES = ("none", "mild", "moderate", "severe")
EFFUSIONS = ("none", "small", "moderate", "large")
N_PATIENTS = 250  # ~2 studies each: ~400 training and ~100 held-out reports


def random_study(rng: np.random.Generator, patient: int, j: int) -> dict:
    effusion = EFFUSIONS[int(rng.choice(4, p=[0.7, 0.15, 0.1, 0.05]))]
    return {
        "study_instance_uid": f"1.2.826.0.1.{patient}.{j}", "accession_number": f"{10_000_000 + 3 * patient + j}",
        "patient_id": f"MRN{1_000_000 + patient * 7919:07d}",
        "study_date": dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000))),
        "lvef": float(rng.uniform(15, 75)) if rng.random() > 0.03 else None, "pasp": float(rng.uniform(18, 75)),
        "pacemaker": bool(rng.random() < 0.15), "tavr": bool(rng.random() < 0.1), "mitraclip": bool(rng.random() < 0.1),
        **{k: SEVERITIES[int(rng.integers(4))]
           for k in ("lv_dilation", "la_dilation", "rv_dilation", "ra_dilation", "lvh")},
        "effusion": effusion, "tamponade": bool(effusion in ("moderate", "large") and rng.random() < 0.3),
    }


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    """Reports with report_id, patient and split (every fifth patient held out)."""
    rng = np.random.default_rng(11)
    rows = []
    for patient in range(N_PATIENTS):
        for j in range(int(rng.integers(1, 4))):
            study = random_study(rng, patient, j)
            text, _ = render_report(study, rng)
            rows.append({"report_id": f"r{patient}-{j}", "patient": study["patient_id"], "text": text,
                         "split": "test" if patient % 5 == 0 else "train"})
    return rows


@pytest.fixture(scope="module")
def vocabulary(corpus):
    train = [r for r in corpus if r["split"] == "train"]
    return learn_vocabulary([r["text"] for r in train], groups=[r["patient"] for r in train], source_split="train")


@pytest.fixture(scope="module")
def tokenizer(vocabulary) -> TemplateTokenizer:
    return TemplateTokenizer(vocabulary)


# --- normalisation and sentences ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("The estimated pulmonary artery systolic pressure was 35 mm Hg.", "THE ESTIMATED PA SYSTOLIC PRESSURE IS 35 MMHG"),
    ("LVEF 55\u201360 %.", "LVEF 55-60%"),
    ("The left atrium is mildly  dilated .", "THE LEFT ATRIUM IS MILD DILATED"),
    ("Mild to moderate mitral regurgitation.", "MILD-TO-MODERATE MITRAL REGURGITATION"),
    ("moderately-severe? no: moderate - severe TR", "MODERATE-TO-SEVERE? NO: MODERATE-TO-SEVERE TR"),
    ("EF <30 percent", "EF LESS THAN 30%"),
    ("Effusion 2.5cm posteriorly", "EFFUSION 2.5 CM POSTERIORLY"),
    ("Study date: 2018-03-04", "STUDY DATE: [DATE]"),
    ("MRN: MRN1234567, accession 20150312", "MRN: [ID], ACCESSION [ID]"),
    ("2. Trace TR.", "TRACE TR"),
])
def test_normalise_sentence_applies_each_documented_rule(raw, expected):
    assert normalise_sentence(raw) == expected


def test_normalisation_keeps_findings_apart():
    # ENLARGED vs DILATED and APPEARS vs IS are deliberately not merged; numbers glued to words are not units.
    assert normalise_sentence("The LA appears enlarged.") == "THE LA APPEARS ENLARGED"
    assert normalise_sentence("2D and M-mode; LA volume index 34 mL/m2") == "2D AND M-MODE; LA VOLUME INDEX 34 ML/M2"


def test_split_sentences_respects_abbreviations_decimals_and_list_markers():
    text = "Signed by Dr. Smith today. E/A ratio 1.4. Average E/e' 15.\n\n1. LVEF 55%. Mild MR.\nHEADER:"
    assert split_sentences(text) == ["Signed by Dr. Smith today.", "E/A ratio 1.4.", "Average E/e' 15.", "1. LVEF 55%.",
                                     "Mild MR.", "HEADER:"]
    assert normalised_sentences(text)[3:] == ["LVEF 55%", "MILD MR", "HEADER:"]


# --- variables: numbers and severities ----------------------------------------------------------------------

def test_every_integer_0_to_300_is_one_token_and_decimals_keep_their_value():
    ids = [L.encode_number(str(v)) for v in range(301)]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 301
    assert L.encode_number("120") == [L.INT_BASE + 120]  # not "12" + "0"
    assert L.encode_number("2.5") == [L.INT_BASE + 2, L.FRAC1_BASE + 5]
    assert L.encode_number("0.05") == [L.INT_BASE + 0, L.FRAC2_BASE + 5]
    for text in ("0", "7", "300", "2.5", "0.75", "0.05", "12.0", "07", "301", "4500", "1.125", "99999.99999"):
        ids = L.encode_number(text)
        assert L.decode_number(ids + [L.EOT], 0) == (text, len(ids))
    assert L.encode_number("123456789012") is None


def test_templatise_replaces_numbers_ranges_and_severity_words():
    assert templatise("LVEF 55-60%") == ("LVEF <NUM>-<NUM>%", [("num", "55"), ("num", "60")])
    assert templatise("MODERATE-TO-SEVERE TR, MILD MR, 2D, ML/M2 1.5X")[0] == "<SEV> TR, <SEV> MR, 2D, ML/M2 1.5X"
    assert templatise("NON-SEVERE")[0] == "NON-SEVERE"
    for template, values in [templatise(s) for s in ("SMALL EFFUSION 0.6 CM", "BP 120/80 MMHG")]:
        assert L.fill(template, [v for _, v in values]) in ("SMALL EFFUSION 0.6 CM", "BP 120/80 MMHG")


def test_token_layout_is_contiguous_and_documented_order():
    assert (L.PAD, L.SOT, L.EOT, L.UNK_SENTENCE) == (0, 1, 2, 3)
    assert L.INT_BASE == 4 and L.FRAC1_BASE == L.INT_BASE + 301 and L.SEVERITY_BASE < L.TEMPLATE_BASE
    assert L.TEMPLATE_BASE == L.SEVERITY_BASE + len(L.SEVERITY_WORDS)
    names = [L.token_name(i) for i in range(L.TEMPLATE_BASE)]
    assert len(set(names)) == L.TEMPLATE_BASE and names[L.SEVERITY_BASE + 3] == "<MILD>"


# --- learned vocabulary: quality bar, round trip, file -------------------------------------------------------

def test_quality_bar_on_held_out_reports(corpus, tokenizer):
    held_out = [r["text"] for r in corpus if r["split"] == "test"]
    assert len(held_out) >= 80
    encoded = [tokenizer.encode_report(t) for t in held_out]
    coverage = 1 - sum(e.n_unknown_sentences for e in encoded) / sum(e.n_sentences for e in encoded)
    template_mean = np.mean([len(e.ids) for e in encoded])
    compression = np.mean([bpe_length(t) for t in held_out]) / template_mean
    fit = np.mean([len(e.ids) + 2 <= 77 for e in encoded])
    print(f"held-out coverage {coverage:.4f}, compression {compression:.2f}x, "
          f"mean tokens {template_mean:.1f}, fit {fit:.2f}")
    assert coverage >= 0.99
    assert compression >= 6.0


def test_decode_encode_round_trips_every_covered_sentence(corpus, tokenizer, vocabulary):
    n_unknown = 0
    for row in corpus:
        encoded = tokenizer.encode_report(row["text"])
        expected = [s if templatise(s)[0] in vocabulary.index else "<UNK_SENTENCE>"
                    for s in normalised_sentences(row["text"])]
        assert tokenizer.decode(encoded.ids) == expected
        assert encoded.n_unknown_sentences == expected.count("<UNK_SENTENCE>")
        n_unknown += encoded.n_unknown_sentences
    assert n_unknown < 0.01 * sum(len(normalised_sentences(r["text"])) for r in corpus)


def test_vocabulary_counts_patients_not_reports_and_keeps_identifiers_out():
    texts = ["Rare remark by patient A.", "Rare remark by patient A.", "Shared line.", "Shared line."]
    by_report = learn_vocabulary(texts, min_count=2)
    by_patient = learn_vocabulary(texts, min_count=2, groups=["a", "a", "b", "c"])
    assert "RARE REMARK BY PATIENT A" in by_report.index
    assert "RARE REMARK BY PATIENT A" not in by_patient.index and "SHARED LINE" in by_patient.index


def test_vocabulary_file_round_trip(tmp_path, corpus, vocabulary, tokenizer):
    path = save_vocabulary(vocabulary, tmp_path / "vocab" / "templates.json")
    text = path.read_text()
    assert "MRN1" not in text and "20" + "18-" not in text  # no raw identifier or date from the corpus
    loaded = load_vocabulary(path)
    assert loaded == vocabulary and loaded.vocabulary_id == vocabulary.vocabulary_id
    data = json.loads(text)
    assert data["format_version"] == 1 and data["source_split"] == "train" and data["min_count"] == 2
    assert len(data["corpus_sha256"]) == 64 and data["templates"][0]["count"] >= data["templates"][-1]["count"]
    again = make_tokenizer("template", path)
    sample = [r["text"] for r in corpus[:8]]
    assert torch.equal(again(sample), tokenizer(sample))


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.update(format_version=99), "format_version"),
    (lambda d: d.update(normaliser_version=0), "normaliser"),
    (lambda d: d["templates"].append({"template": d["templates"][0]["template"], "count": 9, "support": 9}), "unique"),
    (lambda d: d["templates"][0].pop("count"), "malformed"),
    (lambda d: d["templates"].__setitem__(0, {**d["templates"][0], "template": "EDITED"}), "vocabulary_id"),
    (lambda d: d["merges"].append({"pair": [10**6, 0], "support": 9, "sentences": []}), "merge"),
])
def test_load_refuses_malformed_vocabulary_files(tmp_path, vocabulary, corrupt, message):
    path = save_vocabulary(vocabulary, tmp_path / "v.json")
    data = json.loads(path.read_text())
    corrupt(data)
    path.write_text(json.dumps(data))
    with pytest.raises(VocabularyError, match=message) as info:
        load_vocabulary(path)
    assert str(path) in str(info.value) and "relearn" in str(info.value)


def test_load_refuses_missing_and_non_json_files(tmp_path):
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        load_vocabulary(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(VocabularyError, match="not a readable JSON"):
        load_vocabulary(tmp_path / "bad.json")


# --- the tokenizer as open_clip text input ------------------------------------------------------------------

def test_call_gives_sot_eot_padding_and_truncates_at_a_unit_boundary(corpus, tokenizer):
    texts = [r["text"] for r in corpus[:4]]
    out = tokenizer(texts)
    assert out.shape == (4, 77) and out.dtype == torch.long
    for row, text in zip(out.tolist(), texts):
        ids = tokenizer.encode_report(text).ids
        assert row[0] == L.SOT and row.count(L.EOT) == 1
        end = row.index(L.EOT)
        assert all(t == 0 for t in row[end + 1:])
        assert row[1:end] == ids[: end - 1]
    short = tokenizer(texts[0], context_length=20)[0].tolist()
    end = short.index(L.EOT)
    assert short[0] == L.SOT and all(t == 0 for t in short[end + 1:])
    kept, full = short[1:end], tokenizer.encode_report(texts[0]).ids
    assert kept == full[: len(kept)] and 0 < len(kept) <= 18
    assert full[len(kept)] == L.UNK_SENTENCE or full[len(kept)] >= L.TEMPLATE_BASE  # cut before a whole unit
    assert tokenizer.pack([full], 20).tolist()[0] == short


@pytest.mark.parametrize("text", ["", "   \n\n", "asdkjh qwe!!! 123456789012345 <NUM> <SEV>",
                                  "Échographie: ♥ 心脏 ٥٠%", "LVEF 55%" * 500, "\x00\x07 mild 3.14159265358979 cm",
                                  "Mild mild mild."])
def test_unseen_text_degrades_to_unknown_sentences(tokenizer, text):
    encoded = tokenizer.encode_report(text)
    assert encoded.n_unknown_sentences <= encoded.n_sentences
    out = tokenizer(text)
    assert out.shape == (1, 77) and out[0, 0] == L.SOT and (out[0] == L.EOT).sum() == 1
    decoded = tokenizer.decode(encoded.ids)
    assert len(decoded) == encoded.n_sentences
    if not text.strip():
        assert encoded.ids == [] and out[0, :3].tolist() == [L.SOT, L.EOT, 0]


def test_open_clip_text_tower_pools_at_eot(tokenizer, corpus):
    from open_clip.model import _build_text_tower

    cfg = {**tokenizer.text_cfg, "width": 32, "heads": 2, "layers": 1, "output_tokens": True}
    tower = _build_text_tower(16, cfg).eval()
    text = tokenizer([corpus[0]["text"], "", corpus[1]["text"][:200]])
    with torch.no_grad():
        pooled, tokens = tower(text)
    eot_pos = (text == tokenizer.eot_token_id).int().argmax(dim=-1)
    expected = tokens[torch.arange(len(text)), eot_pos] @ tower.text_projection
    assert torch.allclose(pooled, expected, atol=1e-5)
    # CLIP's default argmax pooling would pick a template token, not EOT: hence pool_type="eos".
    assert text[0].argmax() != eot_pos[0] and text[2].argmax() != eot_pos[2]
    assert tokenizer.text_cfg["vocab_size"] == tokenizer.vocab_size == tower.token_embedding.num_embeddings


def test_bpe_tokenizer_is_offline_open_clip_and_pools_at_eot():
    import open_clip

    bpe = make_tokenizer("bpe")
    assert isinstance(bpe, BpeTokenizer) and bpe.vocab_size == 49408
    assert Path(open_clip.tokenizer.default_bpe()).is_file()  # bundled in the wheel: no download
    out = bpe(["Mild mitral regurgitation.", "x " * 200])
    assert out.shape == (2, 77) and (out[:, 0] == bpe.sot_token_id).all()
    assert (out.argmax(dim=-1) == (out == bpe.eot_token_id).int().argmax(dim=-1)).all()
    assert out[1, -1] == bpe.eot_token_id


# --- BPE snippets -------------------------------------------------------------------------------------------

def test_bpe_snippets_partition_the_report_in_fitting_sentence_aligned_windows(corpus):
    for row in corpus[:30]:
        text = row["text"]
        snippets = bpe_snippets(text)
        assert " ".join(snippets).split() == text.split()
        assert all(bpe_length(s) <= 75 for s in snippets)
        assert sum(map(bpe_length, snippets)) == bpe_length(text)
        assert len(snippets) >= bpe_length(text) / 75
        assert evaluation_texts(text) == snippets
        sentences, start = split_sentences(text), 0
        for snippet in snippets:  # each window is a run of whole consecutive sentences
            stop = next(j for j in range(start + 1, len(sentences) + 1) if " ".join(sentences[start:j]) == snippet)
            start = stop
        assert start == len(sentences)


def test_training_snippet_is_random_sentences_in_report_order_that_fill_the_context(corpus):
    text = corpus[0]["text"]
    sentences = split_sentences(text)

    def draws(seed, n=30):
        rng = np.random.default_rng(seed)
        return [training_snippet(text, rng) for _ in range(n)]

    snippets = draws(5)
    assert snippets == draws(5) and snippets != draws(6)  # a function of the generator only
    assert len(set(snippets)) == len(snippets)  # a new draw every time
    for snippet in snippets:
        assert 60 <= bpe_length(snippet) <= 75  # filled, never over the context
        rest, position = snippet, -1
        while rest:  # whole report sentences, in report order
            index = next(i for i in range(position + 1, len(sentences)) if rest.startswith(sentences[i]))
            rest, position = rest[len(sentences[index]):].lstrip(), index
    used = {s for snippet in draws(5, 200) for s in sentences if s in snippet}
    assert used == set(sentences)  # every sentence is trained on
    assert training_snippet("", np.random.default_rng(0)) == "" and evaluation_texts("") == [""]


def test_template_training_text_keeps_about_half_the_sentences_in_order_and_evaluates_whole(corpus, tokenizer):
    text = corpus[0]["text"]
    sentences = split_sentences(text)
    rng = np.random.default_rng(3)
    texts = [tokenizer.training_text(text, rng) for _ in range(50)]
    assert texts[:5] == [tokenizer.training_text(text, r) for r in [np.random.default_rng(3)] for _ in range(5)]
    shares = []
    for t in texts:
        kept = t.split("\n")
        positions = [sentences.index(k) for k in kept]  # whole report sentences ...
        assert positions == sorted(positions)  # ... in report order
        shares.append(len(kept) / len(sentences))
    assert 0.4 < np.mean(shares) < 0.6 and len(set(texts)) == len(texts)
    assert tokenizer(texts[0]).shape == (1, 77)  # still encodes through the template path
    assert tokenizer.evaluation_texts(text) == [text]


def test_report_embedding_is_the_normalised_mean_of_normalised_windows():
    x = np.array([[3.0, 0.0], [0.0, 0.5], [0.0, 2.0]])
    pooled = pool_texts(x, [2, 1])
    np.testing.assert_allclose(pooled, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]], rtol=1e-6)
    assert pooled.dtype == np.float32
    with pytest.raises(EmbeddingError):
        pool_texts(x, [3, 0])  # a report with no text has no embedding


# --- tables -------------------------------------------------------------------------------------------------

def test_token_tables_and_stats(corpus, tokenizer, vocabulary):
    ids, texts = [r["report_id"] for r in corpus], [r["text"] for r in corpus]
    bpe = bpe_token_rows(ids, texts, run_id="run", code_version="v")
    tpl = template_token_rows(tokenizer, ids, texts, run_id="run", code_version="v")
    assert bpe.schema == schemas.TABLES["bpe_tokens"] and tpl.schema == schemas.TABLES["template_tokens"]
    assert set(tpl["vocabulary_id"].to_pylist()) == {vocabulary.vocabulary_id}
    assert tokenizer.pack(tpl["token_ids"].to_pylist()[:3]).tolist() == tokenizer(texts[:3]).tolist()
    splits = pa.table({"report_id": ids[:-1], "split": [r["split"] for r in corpus[:-1]]})
    stats = tokenizer_stats(bpe, tpl, splits, template_vocab_size=tokenizer.vocab_size, bpe_vocab_size=49408,
                            run_id="run", code_version="v")
    assert stats.schema == schemas.TABLES["tokenizer_stats"]
    table = {(r["tokenizer"], r["split"]): r for r in stats.to_pylist()}
    assert set(table) == {(k, s) for k in ("bpe", "template") for s in ("train", "test", "unassigned", "all")}
    test = [r for r in corpus if r["split"] == "test"]
    n_bpe = np.array([bpe_length(r["text"]) for r in test])
    n_tpl = np.array([len(tokenizer.encode_report(r["text"]).ids) for r in test])
    assert table[("bpe", "test")]["mean_tokens"] == pytest.approx(n_bpe.mean())
    assert table[("template", "test")]["compression_vs_bpe"] == pytest.approx(n_bpe.mean() / n_tpl.mean())
    assert table[("template", "test")]["sentence_coverage"] >= 0.99
    assert table[("bpe", "all")]["n_reports"] == len(corpus) and table[("bpe", "all")]["fit_share"] == 0.0
    assert table[("bpe", "all")]["sentence_coverage"] is None


def test_both_tokenizers_satisfy_the_protocol_and_a_bare_open_clip_tokenizer_does_not(tokenizer):
    from open_clip.tokenizer import SimpleTokenizer

    for project in (make_tokenizer("bpe"), tokenizer):
        assert isinstance(project, ReportTokenizer) and project.kind in ("bpe", "template")
        assert project.text_cfg["context_length"] == project.context_length
    bare = SimpleTokenizer()  # tokenizes, but brings no text policy: training falls back to the BPE policy
    assert not isinstance(bare, TextPolicy) and not isinstance(bare, EvaluationTexts)
    assert not isinstance(bare, ReportTokenizer)


def test_make_tokenizer_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        make_tokenizer("wordpiece")
    with pytest.raises(ValueError, match="vocabulary_path"):
        make_tokenizer("template")


# --- sentences no template covers -----------------------------------------------------------------------------

NOVEL = "The left ventricular apex holds a pedunculated thrombus measuring {} cm."
NOVEL_SHAPE = "THE LEFT VENTRICULAR APEX HOLDS A PEDUNCULATED THROMBUS MEASURING <NUM> CM"


def _with_novel_sentences(corpus) -> tuple[list[str], list[str]]:
    """Held-out reports plus two that write a sentence no template covers (three times, other numbers)."""
    held_out = [r for r in corpus if r["split"] == "test"]
    ids = [r["report_id"] for r in held_out] + ["zz-b", "zz-a"]
    texts = [r["text"] for r in held_out] + [NOVEL.format("1.2") + "\nLVEF 55%.",
                                             NOVEL.format("2.4") + " " + NOVEL.format("0.9")]
    return ids, texts


def test_unknown_sentence_table_lists_uncovered_shapes_with_counts(corpus, tokenizer):
    ids, texts = _with_novel_sentences(corpus)
    table = unknown_sentence_rows(tokenizer, ids, texts, run_id="run", code_version="v")
    assert table.schema == schemas.TABLES["template_unknown_sentences"]
    rows = {r["shape"]: r for r in table.to_pylist()}
    assert (rows[NOVEL_SHAPE]["count"], rows[NOVEL_SHAPE]["n_reports"]) == (3, 2)
    assert rows[NOVEL_SHAPE]["example_report_id"] == "zz-a"  # the smallest id, whatever the input order
    assert "LVEF <NUM>%" not in rows and not any(re.search(r"\b[0-9]", shape) for shape in rows)  # numbers masked
    encoded = template_token_rows(tokenizer, ids, texts, run_id="run", code_version="v")
    assert sum(table["count"].to_pylist()) == sum(encoded["n_unknown_sentences"].to_pylist())
    counts = table["count"].to_pylist()
    assert counts == sorted(counts, reverse=True)
    assert set(table["vocabulary_id"].to_pylist()) == {tokenizer.vocabulary.vocabulary_id}


def _declared(name: str, **columns) -> pa.Table:
    """A table with the declared schema of ``name``: the given columns, "t" for lineage, nulls elsewhere."""
    n = len(next(iter(columns.values())))
    columns |= {"run_id": ["t"] * n, "code_version": ["t"] * n}
    schema = schemas.TABLES[name]
    return pa.table({f.name: columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema},
                    schema=schema)


def test_template_unknown_sentences_asset_publishes_the_table_and_top_shapes(corpus, tmp_path):
    import dagster as dg

    from assets.tokenization import template_tokens, template_unknown_sentences, template_vocabulary
    from echo_pipeline import catalog
    from echo_pipeline.storage import DataRoot
    from resources import PipelineResource

    store = DataRoot(tmp_path / "data")
    from echo_pipeline.reports.reading import redact_identifiers

    # As the reports stage stores them: MRN fields redacted (DataRoot refuses a table that still holds one).
    ids = [r["report_id"] for r in corpus] + ["zz-a"]
    texts = [redact_identifiers(r["text"], None, None) for r in corpus] + [NOVEL.format("1.5")]
    from echo_pipeline.privacy import pseudonymise

    patients = [pseudonymise(p, b"test-key", "patient") for p in [r["patient"] for r in corpus] + ["MRN-new"]]
    splits = [r["split"] for r in corpus] + ["test"]
    store.write_table("reports", _declared("reports", report_id=ids, report_text=texts, source_row=range(len(ids)),
                                           source_file=["r.csv"] * len(ids)))
    store.write_table("report_links", _declared("report_links", report_id=ids, study_instance_uid=ids,
                                                patient_key=patients, candidate_count=[1] * len(ids)))
    store.write_table("splits", _declared("splits", study_instance_uid=ids, patient_key=patients, split=splits))
    catalog.publish(store)
    resource = PipelineResource(dicom_root=str(tmp_path / "dicom"), reports_path=str(tmp_path / "r.csv"),
                                data_root=str(store.path))
    result = dg.materialize([template_vocabulary, template_tokens, template_unknown_sentences],
                            resources={"pipeline": resource})
    assert result.success
    [event] = result.asset_materializations_for_node("template_unknown_sentences")
    table = catalog.open_reader(store).sql(
        "SELECT shape, count, example_report_id FROM template_unknown_sentences").to_arrow_table().to_pylist()
    assert {"shape": NOVEL_SHAPE, "count": 1, "example_report_id": "zz-a"} in table
    assert NOVEL_SHAPE in event.metadata["top_20"].value and event.metadata["dagster/row_count"].value == len(table)
