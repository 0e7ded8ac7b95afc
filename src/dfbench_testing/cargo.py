"""A stand-in ``cargo`` for the worker build: ``cargo metadata`` answered with the JSON cargo prints
for a workspace of the layout a test chose, ``cargo zigbuild`` recorded and "building" by copying
a prepared worker binary to where cargo would write it.

The two layouts are upstream datafusion-distributed's: ``OLD_LAYOUT`` (the worker a bin of
``datafusion-distributed-benchmarks`` in ``benchmarks/``, #630) and ``NEW_LAYOUT`` (a bin of
``datafusion-distributed-remote-worker`` in ``benchmarks/remote-worker``, #729/#732, the
benchmarks package keeping its other bins). The metadata has the shape of ``cargo metadata
--format-version 1 --no-deps`` (packages with ids, targets with kind/crate_types/name/src_path,
manifest_path, features; workspace_members, workspace_default_members, target_directory,
workspace_root, version), so dfbench reads it as it reads cargo's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfbench_testing.tools import python_program

# (package, folder in the checkout, its targets as (kind, name), its features)
Layout = list[tuple[str, str, list[tuple[str, str]], dict[str, list[str]]]]

_ROOT = ("datafusion-distributed", ".", [("lib", "datafusion_distributed")], {"integration": []})
_CLI = ("datafusion-distributed-cli", "cli", [("bin", "datafusion-distributed-cli")], {})
OLD_LAYOUT: Layout = [
    _ROOT,
    ("datafusion-distributed-benchmarks", "benchmarks",
     [("lib", "datafusion_distributed_benchmarks"), ("bin", "dfbench"), ("bin", "worker"), ("bench", "shuffle")], {}),
    _CLI,
]
NEW_LAYOUT: Layout = [
    _ROOT,
    # A bench target called worker: only a bin of that name is the worker.
    ("datafusion-distributed-benchmarks", "benchmarks",
     [("lib", "datafusion_distributed_benchmarks"), ("bin", "dfbench"), ("bench", "worker")], {}),
    ("datafusion-distributed-remote-worker", "benchmarks/remote-worker", [("bin", "worker")],
     {"default": [], "iceberg": ["dep:iceberg-datafusion"]}),
    _CLI,
]

_SOURCES = {"lib": "src/lib.rs", "bench": "benches/{name}.rs"}


def _target(folder: Path, kind: str, name: str) -> dict[str, Any]:
    source = _SOURCES.get(kind, "src/bin/{name}.rs" if name == "worker" else "src/main.rs").format(name=name)
    return {"kind": [kind], "crate_types": ["bin" if kind in ("bin", "bench") else "lib"], "name": name,
            "src_path": str(folder / source), "edition": "2024", "doc": kind != "bench",
            "doctest": kind == "lib", "test": True}


def cargo_metadata(root: Path, layout: Layout) -> dict[str, Any]:
    """What ``cargo metadata --format-version 1 --no-deps`` prints for a workspace at ``root``."""
    packages = []
    for name, where, targets, features in layout:
        folder = (root / where).resolve()
        packages.append({
            "name": name, "version": "0.1.0", "id": f"path+file://{folder}#{name}@0.1.0", "license": None,
            "license_file": None, "description": None, "source": None, "dependencies": [],
            "targets": [_target(folder, kind, target) for kind, target in targets], "features": features,
            "manifest_path": str(folder / "Cargo.toml"), "metadata": None, "publish": None, "authors": [],
            "categories": [], "keywords": [], "readme": None, "repository": None, "homepage": None,
            "documentation": None, "edition": "2024", "links": None, "default_run": None, "rust_version": None,
        })
    members = [p["id"] for p in packages]
    return {"packages": packages, "workspace_members": members, "workspace_default_members": members,
            "resolve": None, "target_directory": str(root.resolve() / "target"),
            "build_directory": str(root.resolve() / "target"), "version": 1, "workspace_root": str(root.resolve()),
            "metadata": None}


_SCRIPT = '''"""dfbench_testing's stand-in cargo (see dfbench_testing/cargo.py)."""
import json, os, shutil, sys
from pathlib import Path

state = Path({state!r})
args = sys.argv[1:]
if args[:1] == ["metadata"]:
    layouts = json.loads((state / "layouts.json").read_text())
    here = str(Path.cwd().resolve())
    if here not in layouts:
        sys.stderr.write("error: could not find `Cargo.toml` in `" + here + "` or any parent directory\\n")
        sys.exit(101)
    with open(state / "calls.jsonl", "a") as log:
        log.write(json.dumps({{"cwd": here, "args": args}}) + "\\n")
    print(json.dumps(layouts[here]))
    sys.exit(0)
if args[:1] == ["zigbuild"]:
    here = str(Path.cwd().resolve())
    with open(state / "calls.jsonl", "a") as log:
        log.write(json.dumps({{"cwd": here, "args": args}}) + "\\n")
    print("   Compiling " + args[args.index("-p") + 1] + " v0.1.0", flush=True)
    workers = json.loads((state / "workers.json").read_text())
    target = args[args.index("--target") + 1]
    output = Path(json.loads((state / "layouts.json").read_text())[here]["target_directory"]) / target / "release"
    output.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workers[here], output / "worker")
    print("    Finished `release` profile [optimized] target(s)", flush=True)
    sys.exit(0)
sys.stderr.write("error: no such command: `" + (args[0] if args else "") + "`\\n")
sys.exit(101)
'''


@dataclass
class CargoCall:
    cwd: str
    args: list[str]


class StandInCargo:
    """Install with :meth:`install` (a ``cargo`` first on PATH in ``bindir``), then declare each
    checkout with :meth:`checkout`: its layout and the binary its build produces. :attr:`calls`
    lists every ``metadata`` and ``zigbuild`` call, with its folder and arguments."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.bindir = state / "bin"
        self.bindir.mkdir(parents=True, exist_ok=True)
        (state / "layouts.json").write_text("{}")
        (state / "workers.json").write_text("{}")
        # Through a shell wrapper that execs this interpreter quoted: a #! line cannot name an
        # interpreter whose path holds a space.
        python_program(self.bindir / "cargo", _SCRIPT.format(state=str(state)))

    def checkout(self, root: Path, layout: Layout, worker: Path) -> Path:
        """``root`` answers ``cargo metadata`` with ``layout``; its zigbuild writes ``worker``."""
        for name in ("layouts.json", "workers.json"):
            table = json.loads((self.state / name).read_text())
            table[str(root.resolve())] = cargo_metadata(root, layout) if name == "layouts.json" else str(worker)
            (self.state / name).write_text(json.dumps(table))
        return root

    @property
    def calls(self) -> list[CargoCall]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [CargoCall(**json.loads(line)) for line in path.read_text().splitlines()]

    def builds(self) -> list[CargoCall]:
        return [c for c in self.calls if c.args[:1] == ["zigbuild"]]
