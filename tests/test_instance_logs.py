"""Records of the `echo_pipeline` loggers reach each run's log, in the project's instance (dagster dev) and in
the command line's ephemeral one; the two configurations are the same."""

import logging
from pathlib import Path

import dagster as dg
import yaml

import echo_pipeline_cli

REPO = Path(__file__).resolve().parents[1]


def test_the_cli_instance_manages_the_loggers_the_project_instance_does():
    project = yaml.safe_load((REPO / ".dagster_home" / "dagster.yaml").read_text())
    assert project["python_logs"] == echo_pipeline_cli.INSTANCE_LOG_SETTINGS["python_logs"]


def test_an_echo_pipeline_log_record_is_in_the_run_log(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    @dg.asset
    def logs_through_the_core():
        logging.getLogger("echo_pipeline.embeddings.store").info("chunk 3 of 7 committed")

    instance = echo_pipeline_cli._open_instance()
    result = dg.materialize([logs_through_the_core], instance=instance)
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert "chunk 3 of 7 committed" in messages
