"""The package's shape, as docs/ARCHITECTURE.md §2 draws it: layers, no cycles, thin package faces,
modules of one job, and a command line that imports only what a command uses."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "dfbench"
MAX_LINES = 600

# Layer of each top-level part of the package (ARCHITECTURE.md §2). Within layer 4 the parts are
# ordered too: a part may import its own modules and the parts before it, never those after.
LAYERS = {
    "errors": 1.0, "waiting": 1.0, "models": 1.0, "files": 1.0, "sql": 1.0,
    "aws": 2.0,
    "config": 3.0,
    "worker": 4.0, "data": 4.1, "bench": 4.2, "comparison": 4.3, "transport": 4.4,
    "engines": 4.5,
    "preflight": 5.0, "provision": 5.0, "checkup": 5.0, "worker_deploy": 5.0, "runner": 5.0, "ab": 5.0,
    "costs": 5.0, "fleet": 5.0, "janitor": 5.0,
    "oncluster": 5.0, "github": 5.0, "verify": 5.0, "engine_bench": 5.0, "engine_setup": 5.0,
    "cli": 6.0, "__init__": 6.0, "__main__": 6.0,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every dfbench module ``name`` imports, at any depth of its code (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}
    known = _modules()
    return {target for target in targets if target in known and target != name and target != "dfbench"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer():
    unplaced = sorted({_part(name) for name in _modules()} - set(LAYERS))
    assert unplaced == [], f"place these in LAYERS and in docs/ARCHITECTURE.md §2: {unplaced}"


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for name, path in _modules().items():
        for target in _imports(name, path):
            if LAYERS[_part(target)] > LAYERS[_part(name)]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_cycles():
    graph = {name: _imports(name, path) for name, path in _modules().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_package_faces_only_re_export():
    """An ``__init__.py`` holds imports, ``__all__`` and a docstring; the root package alone adds
    ``__version__`` and the lazy re-export table (its ``__getattr__``)."""
    allowed = (ast.Import, ast.ImportFrom)
    wrong = []
    for path in PACKAGE.rglob("__init__.py"):
        root = path.parent == PACKAGE
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, allowed) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                continue
            assigned = getattr(node, "targets", [getattr(node, "target", None)])
            targets = [t.id for t in assigned if isinstance(t, ast.Name)]
            if targets == ["__all__"] or (root and targets and set(targets) <= {"__version__", "_EXPORTS"}):
                continue
            if root and isinstance(node, ast.FunctionDef) and node.name in {"__getattr__", "__dir__"}:
                continue
            wrong.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert wrong == []


def test_no_module_is_too_long():
    long = {str(path.relative_to(SRC)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def _loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return {line.split(".")[0] for line in result.stdout.splitlines()}


HEAVY = {"boto3", "botocore", "pydantic", "rich", "datafusion", "pyarrow", "paramiko", "moto", "dfbench_testing"}


def test_import_dfbench_loads_no_harness_and_nothing_heavy():
    assert _loaded_after("import dfbench") & HEAVY == set()


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["provision", "--help"], ["data", "sync", "--help"],
                                  ["github", "run", "--help"]])
def test_help_loads_nothing_heavy(argv):
    code = ("import contextlib, io\nfrom dfbench.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass")
    assert _loaded_after(code) & HEAVY == set()


def test_a_sync_with_nothing_to_send_loads_no_transfer_machinery():
    """The modules a `dfbench data sync` imports before it knows whether anything is to be sent:
    boto3 and s3transfer (a third of that command's start-up) load only for an upload, and rich's
    progress display only when a bar is drawn."""
    loaded = _loaded_after("import dfbench.cli.data, dfbench.data.sync, dfbench.aws.session")
    assert loaded & {"boto3", "s3transfer"} == set()
    code = ("import dfbench.cli.data, dfbench.data.sync, dfbench.aws.session, sys\n"
            "print('rich.progress' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_public_api_resolves():
    """Every name the root package lists is there, loaded on first use."""
    code = "import dfbench\nmissing = [n for n in dfbench.__all__ if getattr(dfbench, n, None) is None]\nprint(missing)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    import dfbench
    assert set(dfbench.__all__) == {"__version__", *dfbench._EXPORTS}


def test_the_design_cards_entry_points_are_where_it_names_them():
    """The design card's top level (ARCHITECTURE §2, layer 5): the cluster's life cycle, the deploy
    and the runner are modules of the package itself, not of a sub-package."""
    for name in ("provision", "worker_deploy", "runner"):
        assert (PACKAGE / f"{name}.py").is_file(), name
        assert not (PACKAGE / name).is_dir(), name


def test_dfbench_provision_is_the_function_whatever_was_imported_first():
    """The module ``dfbench.provision`` and the public function share a name; importing the module
    binds the package's attribute to it, which must still provision when called."""
    code = ("import inspect, dfbench, dfbench.provision\n"
            "from dfbench.provision import provision\n"
            "assert callable(dfbench.provision)\n"
            "assert inspect.signature(type(dfbench.provision).__call__).parameters.keys() - {'self'}"
            " == inspect.signature(provision).parameters.keys()\n")
    subprocess.run([sys.executable, "-c", code], check=True)
