"""moto on loopback as the only AWS of a benchmark script: the variables that send every client
there (and nowhere else), short polls, and a scratch working directory (provision writes
``.dfbench/`` into the current one)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Anything that could point dfbench at a real account or bucket.
UNSET = ("AWS_PROFILE", "AWS_VAULT", "BENCHMARK_BUCKET", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@contextmanager
def emulated_aws(time_scale: str = "0.001") -> Iterator[tuple[Any, Path]]:
    """(the MotoServer, the scratch folder, which is the working directory meanwhile). The Price
    List API, which moto lacks and plan, provision and teardown ask, is answered by the harness's
    stand-in throughout."""
    from dfbench_testing import MotoServer, PriceList, emulator_environment, hooked

    server = MotoServer()
    previous_cwd = Path.cwd()
    try:
        for name in UNSET:
            os.environ.pop(name, None)
        os.environ.update(emulator_environment(server.url))
        os.environ["DFBENCH_TIME_SCALE"] = time_scale
        with tempfile.TemporaryDirectory(prefix="dfbench-bench-") as workdir:
            os.chdir(workdir)
            try:
                with hooked(PriceList().hook):
                    yield server, Path(workdir)
            finally:
                os.chdir(previous_cwd)
    finally:
        os.chdir(previous_cwd)
        server.stop()
