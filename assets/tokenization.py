"""Stage 5: reports as tokens: CLIP BPE (EchoCLIP) and the template tokenizer learned from training reports."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.common import preview, publish_catalog
from echo_pipeline import catalog, tokenizers
from resources import PipelineResource

GROUP = "tokenization"
VOCABULARY_FILE = "template_vocabulary.json"


def _reports_with_split(pipeline: PipelineResource) -> pa.Table:
    """report_id, report_text, patient_key and the split of the linked study ("unassigned" when unlinked)."""
    return catalog.open_reader(pipeline.store).sql("""
        SELECT r.report_id, r.report_text, l.patient_key, coalesce(s.split, 'unassigned') AS split
        FROM reports r LEFT JOIN report_links l ON l.report_id = r.report_id
        LEFT JOIN splits s ON s.study_instance_uid = l.study_instance_uid
        ORDER BY r.report_id
    """).to_arrow_table()


def vocabulary_path(pipeline: PipelineResource):
    return pipeline.store.array_dir("template_vocabulary") / VOCABULARY_FILE


@dg.asset(deps=["reports"], kinds={"parquet", "duckdb"}, group_name=GROUP, code_version=tokenizers.CODE_VERSION)
def bpe_tokens(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """CLIP BPE length of every report and its sentence-aligned 77-token windows (docs/tokenizers.md)."""
    reports = pipeline.store.read_table("reports")
    table = tokenizers.bpe_token_rows(reports.column("report_id").to_pylist(), reports.column("report_text").to_pylist(),
                                      run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION)
    pipeline.store.write_table("bpe_tokens", table)
    publish_catalog(pipeline)
    lengths = table.column("n_bpe_tokens").to_numpy()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": table.num_rows,
        "mean_bpe_tokens": float(lengths.mean()) if len(lengths) else 0.0,
        "share_fitting_77": float(table.column("fits_context").to_numpy().mean()) if len(lengths) else 0.0,
    })


@dg.asset(deps=["reports", "report_links", "splits"], kinds={"json"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def template_vocabulary(pipeline: PipelineResource) -> dg.MaterializeResult:
    """Sentence templates learned from the training split's reports only; a versioned, readable JSON file."""
    table = _reports_with_split(pipeline)
    train = table.filter(pc.equal(table.column("split"), "train"))
    vocabulary = tokenizers.learn_vocabulary(train.column("report_text").to_pylist(),
                                             groups=train.column("patient_key").to_pylist(), source_split="train")
    path = tokenizers.save_vocabulary(vocabulary, vocabulary_path(pipeline))
    tokenizer = tokenizers.TemplateTokenizer(vocabulary, 77)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "vocabulary_id": vocabulary.vocabulary_id,
        "vocab_size": tokenizer.vocab_size,
        "training_reports": train.num_rows,
    })


@dg.asset(deps=["template_vocabulary"], kinds={"parquet", "duckdb"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def template_tokens(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Every report encoded with the learned vocabulary (unknown sentences are counted, never dropped)."""
    tokenizer = tokenizers.make_tokenizer("template", vocabulary_path(pipeline))
    reports = pipeline.store.read_table("reports")
    table = tokenizers.template_token_rows(tokenizer, reports.column("report_id").to_pylist(),
                                           reports.column("report_text").to_pylist(),
                                           run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION)
    pipeline.store.write_table("template_tokens", table)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows,
                                          "preview": preview(table.drop_columns(["token_ids"]))})


@dg.asset(deps=["reports", "template_tokens"], kinds={"parquet", "duckdb"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def template_unknown_sentences(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Sentences no template covers, as shapes (numbers, severities, dates, ids masked) with counts: what to look
    at when adapting to a new hospital's reports (docs/tokenizers.md)."""
    tokenizer = tokenizers.make_tokenizer("template", vocabulary_path(pipeline))
    reports = catalog.open_reader(pipeline.store).sql("""
        SELECT r.report_id, r.report_text FROM reports r JOIN template_tokens t ON t.report_id = r.report_id
        WHERE t.n_unknown_sentences > 0 ORDER BY r.report_id
    """).to_arrow_table()  # only reports with an UNK_SENTENCE can hold one
    table = tokenizers.unknown_sentence_rows(tokenizer, reports.column("report_id").to_pylist(),
                                             reports.column("report_text").to_pylist(),
                                             run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION)
    pipeline.store.write_table("template_unknown_sentences", table)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": table.num_rows,
        "unknown_sentences": int(pc.sum(table.column("count")).as_py() or 0),
        "top_20": preview(table.select(["shape", "count", "n_reports", "example_report_id"]), rows=20),
    })


@dg.asset(deps=["bpe_tokens", "template_tokens"], kinds={"parquet", "duckdb"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def tokenizer_stats(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Per tokenizer and split: vocabulary size, tokens per report, context fit, sentence coverage, compression."""
    tokenizer = tokenizers.make_tokenizer("template", vocabulary_path(pipeline))
    table = tokenizers.tokenizer_stats(
        pipeline.store.read_table("bpe_tokens"), pipeline.store.read_table("template_tokens"),
        _reports_with_split(pipeline).select(["report_id", "split"]),
        template_vocab_size=tokenizer.vocab_size, bpe_vocab_size=tokenizers.BpeTokenizer(77).vocab_size,
        run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION,
    )
    pipeline.store.write_table("tokenizer_stats", table)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows,
                                          "stats": dg.MetadataValue.md(table.to_pandas().drop(columns=["run_id", "code_version"]).to_markdown(index=False, floatfmt=".3f"))})
