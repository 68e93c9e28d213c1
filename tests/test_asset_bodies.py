"""Assets only orchestrate (read inputs, call one core function, write, attach metadata): every asset, check and
sensor body stays short and no asset module queries tables itself (input SQL lives in the core's inputs)."""

import ast
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_BODY_LINES = 25


def _decorated_functions():
    for path in sorted(ASSETS.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.decorator_list:
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    body = body[1:]  # the docstring
                yield path.name, node.name, body[-1].end_lineno - body[0].lineno + 1


def test_every_asset_body_is_short():
    found = list(_decorated_functions())
    assert len(found) > 20  # the parser sees the asset definitions
    long = [f"{module}:{name} ({lines} lines)" for module, name, lines in found if lines > MAX_BODY_LINES]
    assert not long, f"move the logic into echo_pipeline/ and call it: {long}"


def test_no_asset_module_queries_tables_itself():
    offenders = [path.name for path in ASSETS.glob("*.py")
                 if "SELECT " in path.read_text() or "open_reader(" in path.read_text()]
    assert not offenders, f"read upstream tables through the core (echo_pipeline/*/inputs.py, upstream.py): {offenders}"
