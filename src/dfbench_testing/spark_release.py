"""Spark's release and Python 3.11 as stand-in instances get them, for dfbench.engines.spark_setup's
scripts: a ``spark-<v>-bin-hadoop3.tgz`` and the S3A jars for a :class:`ReleaseSite`
(:func:`publish`), and the ``python3.11`` package for :class:`StandinUnits` (:func:`python_package`).

The release's ``bin/spark-class`` starts stand-ins of what the units start:

- ``...deploy.master.Master --host H --port P --webui-port U``: takes workers' registrations on P
  and answers ``GET /json/`` on U as Spark's master does (``workers``, each with ``state``,
  ``cores``, ``memory`` in MiB; ``aliveworkers``). A worker is ALIVE while its heartbeats arrive.
- ``...deploy.worker.Worker spark://H:P --host X --cores N --memory Mg``: registers with that
  master and sends a heartbeat every half second, so the count the master gives is real.

``/usr/bin/python3.11 -m dfbench.engines.spark_service ARGS`` checks ARGS with the service's own
parser, checks that every ``PYTHONPATH`` entry the unit gives exists under ``DFBENCH_ROOT`` (and
that dfbench's zip holds the service), then serves the worker's HTTP contract with DataFusion: the
service's table statements over ``s3a://<bucket>/...`` become external tables over the local folder
the test maps that prefix to, its temporary views DataFusion views, and queries (TPC-H as
dfbench.engines.dialect adapts it for Spark) run as they are. Any other use of ``python3.11`` runs
this interpreter.

Several stand-in instances share this machine. Each gets, in its environment (which the units'
processes inherit), its port map and its bucket map (:func:`dfbench_testing.units.instance_environment`):
the service reads ``s3a://<bucket>/`` from the bucket's folder.
Every stand-in binds 127.0.0.1 at its mapped port, whatever address its command line names.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dfbench_testing.units import BUCKETS, PORTS, bucket_folders, local_port

PY4J_ZIP = "py4j-0.10.9.9-src.zip"
HEARTBEAT_S = 0.5
ALIVE_S = 3.0  # heartbeats missed this long: the master calls the worker DEAD, as Spark's does


def _program(name: str, *args: str) -> str:
    """The text of a program running this file with this interpreter (tools.python_script_program)."""
    from dfbench_testing.tools import python_script_program

    with tempfile.TemporaryDirectory() as folder:
        return python_script_program(Path(folder) / name, __file__, *args).read_text()


def _zip(names: Sequence[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "# stand-in\n")
    return buffer.getvalue()


def spark_tarball(version: str) -> bytes:
    """``spark-<version>-bin-hadoop3.tgz``: one top folder, as Apache's, with the files the install
    and the units use."""
    top = f"spark-{version}-bin-hadoop3"
    files: dict[str, tuple[bytes, int]] = {
        "bin/spark-class": (_program("spark-class", "spark-class").encode(), 0o755),
        "python/lib/pyspark.zip": (_zip(["pyspark/__init__.py"]), 0o644),
        f"python/lib/{PY4J_ZIP}": (_zip(["py4j/__init__.py"]), 0o644),
        f"jars/spark-core_2.13-{version}.jar": (b"stand-in jar", 0o644),
        "conf/spark-env.sh.template": (b"# stand-in\n", 0o644),
        "RELEASE": (f"Spark {version} (stand-in)\n".encode(), 0o644),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, (body, mode) in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(body), mode, 0
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def publish(site: Any, version: str = "4.0.0") -> None:
    """Spark ``version``'s release and its S3A jars on ``site`` (a ReleaseSite), where
    dfbench.engines.spark_setup downloads them."""
    from dfbench.engines.spark_setup import RELEASES

    release = RELEASES[version]
    site.publish(release.url.removeprefix("https://"), spark_tarball(version))
    for jar in release.jars:
        site.publish(jar.removeprefix("https://"), f"stand-in {jar.rsplit('/', 1)[-1]}".encode())


def python_package() -> dict[str, dict[str, str]]:
    """``python3.11`` for StandinUnits' ``packages``."""
    return {"python3.11": {"/usr/bin/python3.11": _program("python3.11", "python")}}


def _local_port(port: int) -> int:
    mapped = local_port(port)
    if mapped is None:
        sys.exit(f"stand-in: port {port} has no local port in {PORTS}")
    return mapped


def _serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", _local_port(port)), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _options(words: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """``--name value`` pairs, exactly ``names``: anything else stops the stand-in, as Spark's
    parsers stop on an unknown option."""
    if len(words) != 2 * len(names) or sorted(words[0::2]) != sorted(f"--{n}" for n in names):
        sys.exit(f"stand-in spark-class: expected {' '.join('--' + n for n in names)}, got {' '.join(words)}")
    return {word[2:]: value for word, value in zip(words[0::2], words[1::2], strict=True)}


def _master(words: Sequence[str]) -> None:
    options = _options(words, ["host", "port", "webui-port"])
    workers: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            worker = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                workers[worker["id"]] = {**worker, "seen": time.monotonic()}
            self._answer({"registered": worker["id"]})

        def do_GET(self) -> None:
            if self.path != "/json/":
                self.send_error(404)
                return
            now = time.monotonic()
            with lock:
                listed = [{key: value for key, value in worker.items() if key != "seen"}
                          | {"state": "ALIVE" if now - worker["seen"] < ALIVE_S else "DEAD"}
                          for worker in workers.values()]
            self._answer({"url": f"spark://{options['host']}:{options['port']}", "workers": listed,
                          "aliveworkers": sum(w["state"] == "ALIVE" for w in listed), "status": "ALIVE"})

        def _answer(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    _serve(int(options["port"]), Handler)
    _serve(int(options["webui-port"]), Handler)
    print(f"stand-in master {options['host']}:{options['port']}", flush=True)
    threading.Event().wait()


def _worker(words: Sequence[str]) -> None:
    match = re.fullmatch(r"spark://([^:/]+):(\d+)", words[0] if words else "")
    if match is None:
        sys.exit(f"stand-in spark-class: a worker needs spark://HOST:PORT first, got {' '.join(words)}")
    options = _options(words[1:], ["host", "cores", "memory"])
    memory = re.fullmatch(r"(\d+)g", options["memory"])
    if memory is None or not options["cores"].isdigit():
        sys.exit(f"stand-in spark-class: --cores N --memory Ng, got {' '.join(words)}")
    body = json.dumps({"id": f"worker-{options['host']}-{os.getpid()}", "host": options["host"],
                       "cores": int(options["cores"]), "memory": int(memory[1]) * 1024}).encode()
    url = f"http://127.0.0.1:{_local_port(int(match[2]))}/register"
    print(f"stand-in worker of {words[0]}", flush=True)
    while True:  # as Spark's worker, it keeps trying a master that is not up yet
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=2).close()
        except OSError:
            pass
        time.sleep(HEARTBEAT_S)


def _spark_class(argv: Sequence[str]) -> None:
    kinds = {"org.apache.spark.deploy.master.Master": _master, "org.apache.spark.deploy.worker.Worker": _worker}
    if not argv or argv[0] not in kinds:
        sys.exit(f"stand-in spark-class: unknown class {' '.join(argv[:1])}")
    kinds[argv[0]](argv[1:])


class _DataFusionSpark:
    """The Spark service's statements, answered by DataFusion (a LocalWorker)."""

    def __init__(self, worker: Any, locations: Any, folders: dict[str, str], version: str, master: str) -> None:
        self.worker, self.locations, self.folders = worker, locations, folders
        self.base_url, self.version, self.master = worker.base_url, version, master

    def info(self) -> dict[str, Any]:
        return {**self.worker.info(), "engine": f"spark {self.version} (stand-in: DataFusion)", "master": self.master,
                "data_url": self.locations.data_url}

    def run(self, sql: str) -> Any:
        return self.worker.run(self._datafusion(sql))

    def rows(self, sql: str) -> dict[str, Any]:
        return dict(self.worker.rows(self._datafusion(sql)))

    def _datafusion(self, sql: str) -> str:
        from dfbench.bench.settings import table_sql
        from dfbench.engines.spark_service import view_statement
        from dfbench.sql import split_statements

        statements = []
        for statement in split_statements(sql):
            view = view_statement(statement)
            if view is None:
                statements.append(statement)
            elif view[0] == "parquet":
                path = self.locations.readable(view[2])  # the service's own check
                prefix = next((p for p in self.folders if path.startswith(p)), None)
                local = self.folders[prefix] + "/" + path[len(prefix):] if prefix else path
                statements.append(table_sql(view[1], local))
            elif view[0] == "query":
                statements.append(f"CREATE OR REPLACE VIEW {view[1]} AS {view[2]}")
            else:
                statements.append(f"DROP VIEW {view[2]} {view[1]}")
        return ";\n".join(statements)


def _service(argv: Sequence[str]) -> int:
    from dfbench.engines import spark_service
    from dfbench.errors import ConfigError
    from dfbench.worker.engine import LocalWorker
    from dfbench.worker.local import run_service, serve

    try:
        args = spark_service.parse_arguments(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    root = os.environ.get("DFBENCH_ROOT", "")
    entries = os.environ.get("PYTHONPATH", "").split(":")
    missing = [entry for entry in entries if not os.path.isfile(root + entry)]
    code = [entry for entry in entries if Path(entry).name.startswith("dfbench-")]
    if missing or len(code) != 1:
        print(f"stand-in service: PYTHONPATH {entries}: missing {missing}, dfbench zips {code}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(root + code[0]) as archive:
        if "dfbench/engines/spark_service.py" not in archive.namelist():
            print(f"stand-in service: {code[0]} does not hold the service", file=sys.stderr)
            return 1
    folders = {f"s3a://{bucket}/": folder for bucket, folder in bucket_folders().items()}
    if len(folders) > 1:
        print(f"stand-in service: one bucket in {BUCKETS}, not {len(folders)}", file=sys.stderr)
        return 1
    data_dir = next(iter(folders.values()), None)  # the only folder DataFusion may read
    version = Path(os.environ.get("SPARK_HOME", "spark")).name
    port = _local_port(args.port)
    return run_service(args.host, port, lambda: serve(
        args.host, port, quiet=args.quiet, make_worker=lambda url: _DataFusionSpark(
            LocalWorker(data_dir=data_dir, base_url=url), args.locations, folders, version, args.master)))


def _python(argv: list[str]) -> int:
    if argv[:2] == ["-m", "dfbench.engines.spark_service"]:
        return _service(argv[2:])
    os.execv(sys.executable, [sys.executable, *argv])


if __name__ == "__main__":
    _role, *_argv = sys.argv[1:]
    if _role == "spark-class":
        _spark_class(_argv)
    else:
        sys.exit(_python(_argv))
