"""The apps depend on each other one way only, in the order of ARCHITECTURE.md; no cycle between apps.

`common < members < loyalty < campaigns, integrations < rewards < api < config`; `reports` reads every domain
app (it sits above `rewards`, below `api`, which serves its figures).
The scan reads every module of every app with `ast` (imports inside functions included, migrations excluded:
they are generated and name the validators of the models they describe), so a new import against the order
fails here, not in review.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The apps an app may import (besides itself): those of the layers before its own. `campaigns` and
# `integrations` stand side by side: neither imports the other.
LAYERS = ["common", "members", "loyalty", ("campaigns", "integrations"), "rewards", "reports", "api", "config"]


def _allowed() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    below: set[str] = set()
    for layer in LAYERS:
        apps = set(layer) if isinstance(layer, tuple) else {layer}
        for app in apps:
            allowed[app] = set(below)
        below |= apps
    return allowed


ALLOWED = _allowed()
APPS = set(ALLOWED)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported app) for every import of one of our apps in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in APPS:
                found.append((node.lineno, top))
    return found


def _modules(app: str) -> list[Path]:
    return [p for p in sorted((ROOT / app).rglob("*.py")) if "migrations" not in p.parts]


def app_imports() -> dict[str, dict[str, list[str]]]:
    """app -> imported app -> the places ("file:line") that import it."""
    graph: dict[str, dict[str, list[str]]] = {app: {} for app in APPS}
    for app in APPS:
        for path in _modules(app):
            for line, target in _imports(path):
                if target != app:
                    graph[app].setdefault(target, []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_every_app_of_the_project_is_in_the_order():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "scripts"}
    assert packages == APPS


@pytest.mark.parametrize("app", sorted(APPS))
def test_app_imports_only_the_apps_below_it(app):
    against = {target: places for target, places in app_imports()[app].items() if target not in ALLOWED[app]}
    assert not against, f"{app} may import only {sorted(ALLOWED[app])}; imports against the order: {against}"


def test_no_cycle_between_apps():
    graph = {app: set(targets) for app, targets in app_imports().items()}
    state: dict[str, int] = {}

    def visit(app: str, path: list[str]) -> None:
        state[app] = 1
        for target in sorted(graph[app]):
            if state.get(target) == 1:
                raise AssertionError("cycle: " + " -> ".join([*path, app, target]))
            if target not in state:
                visit(target, [*path, app])
        state[app] = 2

    for app in sorted(graph):
        if app not in state:
            visit(app, [])


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from rewards.services import checkout\n    import api.urls\n")
    assert _imports(module) == [(2, "rewards"), (3, "api")]


def test_earning_stays_inside_loyalty():
    """The earning path (services, the ledger, the rule language) imports only loyalty, members and common."""
    earning = [ROOT / "loyalty" / "services" / "earning.py", *(ROOT / "loyalty" / "ledger").glob("*.py")]
    earning += [ROOT / "loyalty" / name for name in ("rules.py", "rule_context.py", "earning.py", "expiry.py")]
    outside = {
        f"{path.relative_to(ROOT)}:{line}": target
        for path in earning
        for line, target in _imports(path)
        if target not in {"loyalty", "members", "common"}
    }
    assert not outside


def test_one_paid_order_write_path():
    """Only `rewards.services.checkout.order_checkout` composes the earning step of a paid order.

    Loyalty keeps that step (`order_record_paid_in_transaction`, inside the caller's transaction) but no durable
    entry point of its own: every paid order (API, demo, benches, tests) goes through the checkout, which also
    redeems the order's codes and rewards a referrer.
    """
    step = "order_record_paid_in_transaction"
    homes = {ROOT / "loyalty" / "services" / "earning.py", ROOT / "rewards" / "services" / "checkout.py"}
    paths = [p for app in sorted(APPS) for p in _modules(app)]
    paths += sorted((ROOT / "bench").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    callers = []
    for path in paths:
        if path in homes or path == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Name):
                names = [node.id]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            if step in names:
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not callers, f"record paid orders with rewards.services.checkout.order_checkout, not {step}: {callers}"
