"""dfbench's local worker as a subprocess on loopback: started on a free port, stopped with SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from dfbench.errors import DfbenchError

WORKER_START_TIMEOUT_S = 60.0


class LocalWorkerProcess:
    """``python -m dfbench.worker.local --port 0`` on loopback, stopped with SIGTERM. ``args`` are
    more of its options (``--worker-urls``, ``--commit``). ``module`` serves the same contract on
    another engine (``dfbench.engines.spark_service``), with the same options; ``name`` is what
    its errors call it."""

    def __init__(self, data_dir: str | Path | None = None, start_timeout_s: float = WORKER_START_TIMEOUT_S,
                 args: Sequence[str] = (), module: str = "dfbench.worker.local",
                 name: str = "local worker") -> None:
        self.data_dir = data_dir
        self.module = module
        self.name = name
        self.args = list(args)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="dfbench-worker-")

    def start(self) -> str:
        """Start the worker (unless it runs already) and return its URL once it listens."""
        if self.url is not None and self.process is not None and self.process.poll() is None:
            return self.url  # a second start would leave the first process running, unowned
        command = [sys.executable, "-m", self.module, "--host", "127.0.0.1", "--port", "0", "--quiet"]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        command += self.args
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        stdin=subprocess.DEVNULL)
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, name="localworker-stdout", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise DfbenchError(f"The {self.name} did not start within {self.start_timeout_s:.0f}s."
                                   + self._stderr_tail())
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.process.wait()
                raise DfbenchError(f"The {self.name} exited (code {code}) before listening." + self._stderr_tail())
            match = re.search(r"listening on (\S+)", line)
            if match:
                self.url = match.group(1)
                return self.url

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:].strip()
        return f"\n{tail}" if tail else ""

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> LocalWorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
