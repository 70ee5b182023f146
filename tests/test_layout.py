"""The package layout is the architecture: dependencies point one way and never loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "sim"

# what each package of sim may import from the others (its own modules aside)
ALLOWED = {
    "engine": set(),
    "workload": {"engine"},
    "fleet": {"engine", "workload"},
    "config": {"engine", "workload", "fleet"},
    "results": {"engine", "workload", "fleet", "config"},
    "runner": {"engine", "workload", "fleet", "config", "results"},
    "planning": {"engine", "workload", "fleet", "config", "results", "runner"},
    "commands": {"engine", "workload", "fleet", "config", "results", "runner", "planning"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sim":
                found.update(f"sim.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def _sim_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SIM.rglob("*.py")}


def test_every_module_lives_in_a_package() -> None:
    loose = [p.name for p in SIM.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the packages: {loose}"
    assert {p.name for p in SIM.iterdir() if (p / "__init__.py").exists()} == set(ALLOWED)


def test_packages_import_only_the_layers_below_them() -> None:
    wrong = []
    for module, imported in _sim_graph().items():
        if module == "sim":
            continue
        package = module.split(".")[1]
        for name in imported:
            top = name.split(".")[0]
            if top in ("app", "calibrate"):
                wrong.append(f"{module} imports {name}")
            elif top == "sim" and name.count("."):
                target = name.split(".")[1]
                if target != package and target not in ALLOWED[package] and target != "catalog":
                    wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_no_module_imports_loop() -> None:
    graph = {m: {i for i in imported if i in _sim_graph_names()} for m, imported in
             _sim_graph().items()}
    state: dict[str, int] = {}
    loops = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                loops.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert loops == []


def _sim_graph_names() -> set[str]:
    return {_module_name(p) for p in SIM.rglob("*.py")}


def test_help_imports_no_simulator_code_or_heavy_library() -> None:
    """`servesim --help` registers every command without importing its module, so it starts
    in a blink; what it loads is checked here, not timed."""
    code = ("import sys; from sim.commands.cli import build_parser, _command_word; "
            "build_parser(None).format_help(); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'pandas', 'simpy', 'scipy', 'pydantic', 'yaml', 'matplotlib') "
            "or m.startswith(('sim.engine', 'sim.runner', 'sim.fleet', 'sim.config', "
            "'calibrate.jobs')))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    assert loaded == []


def test_a_command_loads_only_its_own_module() -> None:
    code = ("import sys; from sim.commands.cli import build_parser; build_parser('models'); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('sim.commands.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    assert loaded == ["sim.commands.catalog_commands", "sim.commands.cli"]


def test_calibrate_lists_the_sources_its_jobs_read() -> None:
    """`servesim calibrate ingest` offers its sources without importing the jobs; the list
    must be the jobs' own."""
    from calibrate import jobs
    from calibrate.cli import SOURCE_NAMES

    assert sorted(SOURCE_NAMES) == sorted([*jobs.SOURCES, *jobs.RUN_SOURCES])
