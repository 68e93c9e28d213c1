"""Packaging: every imported distribution is declared, and the bootstrap refuses or rebuilds unsupported Pythons."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _declared() -> set[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imported_top_level(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_package_is_a_declared_distribution():
    sources = [*ROOT.glob("echo_pipeline/**/*.py"), *ROOT.glob("assets/*.py"), *ROOT.glob("resources/*.py"),
               ROOT / "definitions.py", ROOT / "echo_pipeline_cli.py"]
    own = {"echo_pipeline", "assets", "resources", "definitions", "echo_pipeline_cli"}
    distributions = packages_distributions()
    undeclared = {}
    for module in _imported_top_level(sources) - own - set(sys.stdlib_module_names):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & _declared():
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_running_python_is_inside_requires_python():
    spec = PYPROJECT["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert ".".join(map(str, sys.version_info[:3])) in SpecifierSet(spec)


def _fake_python(tmp_path: Path, version: str) -> Path:
    """A 'python' that reports `version` to the bootstrap's check and otherwise runs the real interpreter."""
    script = tmp_path / f"python{version}"
    major, minor = version.split(".")
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = "--version" ]; then echo "Python {version}.0"; exit 0; fi\n'
        f'exec {sys.executable} -c "import sys; sys.version_info = ({major}, {minor}, 0); '
        'exec(sys.stdin.read())" "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_bootstrap_refuses_a_python_outside_the_supported_range(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "scripts/bootstrap.sh"):
        (checkout / name).write_text((ROOT / name).read_text())
    result = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(_fake_python(tmp_path, "3.9"))}, timeout=60)
    assert result.returncode != 0
    assert "outside pyproject.toml's requires-python" in result.stderr and not (checkout / ".venv").exists()


def test_bootstrap_rebuilds_a_venv_made_with_an_unsupported_python(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "scripts/bootstrap.sh"):
        (checkout / name).write_text((ROOT / name).read_text())
    old_venv = checkout / ".venv" / "bin"
    old_venv.mkdir(parents=True)
    (old_venv / "marker").write_text("made by the old python")
    (old_venv / "python").symlink_to(_fake_python(tmp_path, "3.13"))
    # Stop right after the venv decision: `-m venv` of the fake python is what the rebuild would run next.
    result = subprocess.run(["bash", "-c", "source scripts/bootstrap.sh"], cwd=checkout, capture_output=True,
                            text=True, env={**os.environ, "PYTHON": str(_fake_python(tmp_path, "3.11"))}, timeout=120)
    assert "does not support: rebuilding it" in result.stdout
    assert not (old_venv / "marker").exists()


@pytest.mark.parametrize("script", ["test.sh", ".ci/run"])
def test_ci_runs_exactly_the_readme_test_command(script):
    text = (ROOT / script).read_text()
    if script == ".ci/run":
        assert "./test.sh" in text and "pytest" not in text
    else:
        assert "scripts/ci_system_deps.sh" in text and "./test.sh" in (ROOT / "README.md").read_text()
