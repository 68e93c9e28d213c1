"""Driving `dagster dev` the way a user's browser does: start it, call its GraphQL API, take screenshots.

Everything talks to 127.0.0.1 only, every wait has a deadline, and `DagsterDev.stop` takes down the whole
process group (webserver, daemon, code servers, run workers) even when a test fails half-way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "echo_pipeline"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # the repository a `Definitions` object becomes
ASSET_JOB = "__ASSET_JOB"  # the implicit job the UI's "Materialize" button launches
PARTITION_TAG = "dagster/partition"
CHROMIUM = Path("/usr/bin/chromium")
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ() -> dict[str, str]:
    """This process's environment without pipeline settings or a Dagster instance a developer may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ECHO_PIPELINE_") and k != "DAGSTER_HOME"}


def artifacts_dir(name: str) -> Path:
    """tests/artifacts/<name>/, for files a person looks at after the run; git ignores the whole folder."""
    root = REPO_ROOT / "tests" / "artifacts"
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("*\n")
    return root / name


def _reset_interrupt_signals() -> None:
    # A shell that starts jobs in the background makes them ignore SIGINT, and ignored signals survive exec;
    # `dagster dev` maps SIGTERM onto its SIGINT handler, so it would then ignore both and never shut down.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDev:
    """`dagster dev` on 127.0.0.1:`port` in its own process group, logging to `log_path`."""

    def __init__(self, dagster_home: Path, env: dict[str, str], log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        dagster = Path(sys.executable).parent / "dagster"  # the virtualenv running the tests
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-w", str(REPO_ROOT / "workspace.yaml")],
            # Not the repository root: `dagster dev` loads the .env of its working directory *over* the
            # environment, so the demo's .env (./demo.sh writes one) would send this test's runs to the demo's
            # cohort and data root. The workspace file's own folder is still the code location's.
            cwd=log_path.parent, env={**clean_environ(), **env, "DAGSTER_HOME": str(dagster_home)},
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_reset_interrupt_signals,
        )

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """The `data` of a GraphQL answer; AssertionError with the server's errors when there are any."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        assert not answer.get("errors"), f"GraphQL errors: {answer['errors']}"
        return answer["data"]

    def wait_until_loaded(self, timeout: float = 180) -> None:
        """Wait for the webserver to answer and the code location to load (fail with its load error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                entries = self.graphql(WORKSPACE_QUERY, timeout=10)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                time.sleep(1)
                continue
            entry = next((e for e in entries if e["name"] == LOCATION), None)
            if entry and entry["loadStatus"] == "LOADED":
                location = entry["locationOrLoadError"]
                assert location["__typename"] == "RepositoryLocation", f"code location failed to load: {location}"
                return
            time.sleep(1)
        raise AssertionError(f"code location {LOCATION!r} not loaded after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        """SIGINT to `dagster dev` (it shuts its services down), then TERM and KILL to whatever is left."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                if not _group_alive(self.process.pid):
                    break
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + grace
                while _group_alive(self.process.pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
            if self.process.poll() is None:
                self.process.wait(timeout=5)
        finally:
            self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of the group still count for killpg; /proc tells whether any member still runs.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


WORKSPACE_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } }
    ... on PythonError { message } } }
"""

ASSET_NODES_QUERY = """
{ assetNodes { assetKey { path } isMaterializable partitionKeys opNames dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name
        executionForLatestMaterialization { status } } } } } }
"""

LAUNCH_RUN_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message path } }
    ... on PythonError { message stack }
    ... on Error { message } } }
"""

RUN_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { runId status tags { key value } } } }
"""

RUN_ERRORS_QUERY = """
query Events($runId: ID!) { logsForRun(runId: $runId, limit: 5000) { __typename
    ... on EventConnection { events { __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message stack causes { message } } }
        ... on RunFailureEvent { error { message stack causes { message } } }
        ... on EngineEvent { error { message stack causes { message } } } } } } }
"""


@dataclass(frozen=True)
class Batch:
    """Assets sharing one partitions definition, ready once earlier batches are done; one run per partition."""

    assets: tuple[str, ...]
    partitions: tuple[str, ...]  # () for unpartitioned assets
    op_names: frozenset[str]


def plan_batches(nodes: list[dict]) -> list[Batch]:
    """Materializable assets in dependency order, grouped as one user clicking through the UI would launch them.

    A run covers one partition of one partitions definition, so each batch is the largest set of assets with
    the same partition keys whose upstream assets are done or in the batch (observable source assets, which
    nobody materializes, are left out).
    """
    nodes_by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes if n["isMaterializable"]}
    parents = {key: {"/".join(d["path"]) for d in node["dependencyKeys"]} & set(nodes_by_key)
               for key, node in nodes_by_key.items()}
    remaining, batches = set(nodes_by_key), []
    while remaining:
        def ready(key: str, batch: set[str]) -> bool:
            return all(p not in remaining or p in batch for p in parents[key])

        first = min((k for k in remaining if ready(k, set())), default=None)
        assert first is not None, f"dependency cycle among {sorted(remaining)}"
        partitions = tuple(nodes_by_key[first]["partitionKeys"])
        batch: set[str] = set()
        grew = True
        while grew:
            grew = False
            for key in sorted(remaining - batch):
                if tuple(nodes_by_key[key]["partitionKeys"]) == partitions and ready(key, batch):
                    batch.add(key)
                    grew = True
        batches.append(Batch(tuple(sorted(batch)), partitions,
                             frozenset(op for key in batch for op in nodes_by_key[key]["opNames"])))
        remaining -= batch
    return batches


def launch_run(server: DagsterDev, assets: tuple[str, ...], partition: str | None, run_config: dict) -> str:
    """Launch the implicit asset job over `assets` (one partition), as the UI's Materialize button does."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": ASSET_JOB,
                     "assetSelection": [{"path": key.split("/")} for key in assets]},
        "runConfigData": run_config,
        "executionMetadata": {"tags": [{"key": PARTITION_TAG, "value": partition}] if partition else []},
    }
    result = server.graphql(LAUNCH_RUN_MUTATION, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"launchRun({assets}, {partition}) refused: {result}"
    return result["run"]["runId"]


def wait_for_runs(server: DagsterDev, run_ids: list[str], deadline: float) -> dict[str, str]:
    """Poll until every run has finished (or `deadline`, a time.monotonic() value); returns run id → status."""
    status: dict[str, str] = {}
    while True:
        for run_id in run_ids:
            if status.get(run_id) not in FINISHED:
                status[run_id] = server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]["status"]
        if all(s in FINISHED for s in status.values()) or time.monotonic() > deadline:
            return status
        time.sleep(1)


def run_errors(server: DagsterDev, run_id: str) -> str:
    """A run's error messages (with their causes) first, then the last lines of the first stack."""
    events = server.graphql(RUN_ERRORS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
    messages, stacks = [], []
    for event in events:
        error = event.get("error")
        if error:
            causes = " <- ".join(cause["message"].strip() for cause in error.get("causes") or [])
            messages.append(f"{event['__typename']}: {error['message'].strip()}" + (f" <- {causes}" if causes else ""))
            stacks.append("".join(error.get("stack") or [])[-2000:])
        elif event.get("level") == "ERROR":
            messages.append(f"[{event.get('stepKey')}] {event['message']}")
    return "\n".join(messages[-20:] + stacks[:1]) or "(no error events)"


def screenshot(url: str, out_png: Path, profile_dir: Path, *, timeout: float = 120) -> subprocess.CompletedProcess:
    """Headless Chromium renders `url` (15 s of virtual time for the single-page app to load) into `out_png`."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile_dir}", "--window-size=1600,1000", "--virtual-time-budget=15000",
        f"--screenshot={out_png}", url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


#: The smallest synthetic cohort that trains: clip_model needs one full batch (32) of training-split
#: clip–report pairs (~4 per patient) and a non-empty validation split (see pick_pseudonym_key).
TRAINABLE_PATIENTS, TRAINABLE_SEED = 14, 11


def trainable_cohort(tmp_path_factory) -> Path:
    """A TRAINABLE_PATIENTS-patient cohort, generated once per test session and shared read-only."""
    from echo_pipeline.synth.cohort import generate_cohort

    out = tmp_path_factory.getbasetemp() / f"cohort-{TRAINABLE_PATIENTS}p-seed{TRAINABLE_SEED}"
    ready = out / ".complete"
    if not ready.exists():
        shutil.rmtree(out, ignore_errors=True)
        generate_cohort(out, patients=TRAINABLE_PATIENTS, seed=TRAINABLE_SEED, workers=2)
        ready.touch()
    return out


def pick_pseudonym_key(cohort: Path, fractions: tuple[float, float, float], *, min_train_clips: int = 40,
                       min_validation_clips: int = 2, min_test_patients: int = 2, tries: int = 500) -> str:
    """A pseudonym key under which the cohort's patient split can train and evaluate a model.

    `splits` assigns a patient by a hash of its pseudonym, so with a dozen patients some keys leave the
    validation split empty or the training split short of one batch of pairs. This reads the cohort's ground
    truth and returns the first key ("test-key-<n>") whose split gives the training split at least
    `min_train_clips` reported grey-scale A4C clips (a batch of 32 plus slack for the view classifier's
    misses), the validation split `min_validation_clips`, and the test split `min_test_patients` patients.
    """
    import pandas as pd

    from echo_pipeline.privacy import pseudonymise
    from echo_pipeline.reports.splits import assign_split

    truth = cohort / "truth"
    clips = pd.read_parquet(truth / "clips.parquet")
    studies = pd.read_parquet(truth / "studies.parquet")
    usable = clips[(clips["view"] == "A4C") & ~clips["is_colour"].astype(bool) & (clips["frames"] >= 10)]
    usable = usable.merge(studies[studies["has_report"]][["study_instance_uid", "patient_id"]], on="study_instance_uid")
    per_patient = usable.groupby("patient_id").size()
    named = dict(zip(("train", "validation", "test"), fractions))
    for attempt in range(tries):
        key = f"test-key-{attempt}"
        split = {p: assign_split(pseudonymise(p, key.encode(), "patient"), 0, named)
                 for p in studies["patient_id"].unique()}
        clips_in = {name: sum(n for p, n in per_patient.items() if split[p] == name) for name in named}
        test_patients = sum(1 for p in per_patient.index if split[p] == "test")
        if (clips_in["train"] >= min_train_clips and clips_in["validation"] >= min_validation_clips
                and test_patients >= min_test_patients):
            return key
    raise AssertionError(f"no key in {tries} tries splits {cohort} into a trainable cohort; generate more patients")


def prepare_dagster_home(home: Path) -> Path:
    """A fresh instance folder holding a copy of the project's dagster.yaml.

    The "Join the Dagster community" dialog is marked as seen (the file the UI's Skip button writes), so the
    screenshots show the page under it.
    """
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    (home / ".nux").mkdir(exist_ok=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    return home
