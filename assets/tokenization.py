"""Stage 5: reports as tokens: CLIP BPE (EchoCLIP) and the template tokenizer learned from training reports."""

import dagster as dg
import pyarrow.compute as pc

from assets.publishing import preview, publish_catalog, table_metadata
from echo_pipeline import tokenizers
from echo_pipeline.tokenizers.inputs import read_reports_with_split, read_reports_with_unknown_sentences
from resources import PipelineResource

GROUP = "tokenization"
VOCABULARY_FILE = "template_vocabulary.json"


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
        **table_metadata("bpe_tokens", table, partitioned=False),
        "mean_bpe_tokens": float(lengths.mean()) if len(lengths) else 0.0,
        "share_fitting_77": float(table.column("fits_context").to_numpy().mean()) if len(lengths) else 0.0,
    })


@dg.asset(deps=["reports", "report_links", "splits"], kinds={"json"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def template_vocabulary(pipeline: PipelineResource) -> dg.MaterializeResult:
    """Sentence templates learned from the training split's reports only; a versioned, readable JSON file."""
    table = read_reports_with_split(pipeline.store)
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
    return dg.MaterializeResult(metadata={**table_metadata("template_tokens", table, partitioned=False),
                                          "preview": preview(table.drop_columns(["token_ids"]))})


@dg.asset(deps=["reports", "template_tokens"], kinds={"parquet", "duckdb"}, group_name=GROUP,
          code_version=tokenizers.CODE_VERSION)
def template_unknown_sentences(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Sentences no template covers, as shapes (numbers, severities, dates, ids masked) with counts: what to look
    at when adapting to a new hospital's reports (docs/tokenizers.md)."""
    tokenizer = tokenizers.make_tokenizer("template", vocabulary_path(pipeline))
    reports = read_reports_with_unknown_sentences(pipeline.store)
    table = tokenizers.unknown_sentence_rows(tokenizer, reports.column("report_id").to_pylist(),
                                             reports.column("report_text").to_pylist(),
                                             run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION)
    pipeline.store.write_table("template_unknown_sentences", table)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        **table_metadata("template_unknown_sentences", table, partitioned=False),
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
        read_reports_with_split(pipeline.store).select(["report_id", "split"]),
        template_vocab_size=tokenizer.vocab_size, bpe_vocab_size=tokenizers.BpeTokenizer(77).vocab_size,
        run_id=context.run.run_id, code_version=tokenizers.CODE_VERSION,
    )
    pipeline.store.write_table("tokenizer_stats", table)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={**table_metadata("tokenizer_stats", table, partitioned=False),
                                          "stats": dg.MetadataValue.md(table.to_pandas().drop(columns=["run_id", "code_version"]).to_markdown(index=False, floatfmt=".3f"))})
