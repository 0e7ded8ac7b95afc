"""dfbench stands without its test harness: neither ``import dfbench`` nor any of its modules loads
dfbench_testing, moto or pytest (which only the ``test`` extra installs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dfbench

HARNESS = ("dfbench_testing", "moto", "pytest")


def loaded_after(code: str) -> list[str]:
    """The harness modules a fresh interpreter has loaded after running ``code``, with this
    checkout's dfbench first on the path (the one the suite tests)."""
    src = str(Path(dfbench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith({HARNESS!r}))))"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_dfbench_loads_no_harness() -> None:
    assert loaded_after("import dfbench") == []


def test_no_dfbench_module_loads_the_harness() -> None:
    every_module = (
        "import importlib, pkgutil, dfbench\n"
        "for module in pkgutil.walk_packages(dfbench.__path__, 'dfbench.'):\n"
        "    if not module.name.endswith('__main__'):  # running it would run the CLI\n"
        "        importlib.import_module(module.name)"
    )
    assert loaded_after(every_module) == []
