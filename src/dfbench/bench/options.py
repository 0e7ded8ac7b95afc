"""RunOptions: what a benchmark run was asked to do, as one record checked once.

:func:`dfbench.runner.run_benchmark` takes these as keyword arguments and builds the record first,
so every argument error is a ConfigError raised before the worker (or AWS) is contacted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfbench.bench.settings import DISTRIBUTED_DEFAULTS, resolve_settings
from dfbench.data import DEFAULT_DATA_DIR, checked_dataset
from dfbench.errors import ConfigError
from dfbench.worker.client import QUERY_TIMEOUT_S

if TYPE_CHECKING:
    from dfbench.bench.queries import Query
    from dfbench.bench.results import QueryOutcome
    from dfbench.models import Cluster

REMOTE_ITERATIONS = 5
LOCAL_ITERATIONS = 3


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The keyword arguments of :func:`~dfbench.runner.run_benchmark`.

    - ``url`` or ``cluster`` (exactly one): the worker at a URL, or a provisioned cluster
      (``dfbench.status(...)``) reached ``via`` auto, ssh, ssm or relay (see :mod:`dfbench.transport`),
      with ``profile`` for AWS and ``transport_options`` as
      :class:`~dfbench.transport.connection.ClusterConnection`'s keyword arguments.
    - ``queries``: ids (``["q1", "q3"]`` or ``"q1,q3"``) and/or :class:`Query` objects (custom SQL);
      by default all of the set the dataset's name selects (``tpch_sf10``: the 22 TPC-H queries).
    - ``queries_dir``: a folder of ``qN.sql`` files to take the queries from instead (any dataset).
    - ``iterations`` timed executions per query (at least 1), more while ``min_time_s`` has not
      been spent; a ``warmup`` execution before them. By default 5 for a remote run (what the CDK
      tooling ran) and 3 for dfbench's local worker (:meth:`iterations_for`).
    - ``settings``: see :func:`~dfbench.bench.settings.resolve_settings`. Default: none for
      dfbench's local worker, the CDK tooling's :data:`DISTRIBUTED_DEFAULTS` for a real worker.
    - ``location``: the folder (or ``s3://bucket``) holding ``<dataset>/<table>/``, as the worker
      sees it; by default the absolute path of ``data_dir`` (which must then hold the dataset), or
      the cluster's bucket.
    - ``engine``: the name results are filed under; see
      :func:`~dfbench.bench.machine.default_engine_name`.
    - ``on_query_done``: called with each finished query once its file is written, the queries
      recorded as not run after a lost worker included (an exception it raises stops the run like
      one of the runner's own, KeyboardInterrupt included).
    - ``extra_manifest``: entries added to (or replacing those of) ``run.json``.
    """

    dataset: str
    engine: str | None = None
    iterations: int | None = None
    queries: Sequence[str | Query] | str | None = None
    queries_dir: Path | None = None
    warmup: bool = True
    settings: Mapping[str, Any] | Iterable[str] | str | None = None
    min_time_s: float = 0
    url: str | None = None
    cluster: Cluster | None = None
    via: str = "auto"
    profile: str | None = None
    transport_options: Mapping[str, Any] | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    progress: bool = True
    location: str | None = None
    query_timeout_s: float | None = QUERY_TIMEOUT_S
    on_query_done: Callable[[QueryOutcome], None] | None = None
    extra_manifest: Mapping[str, Any] | None = None
    # ``settings`` resolved; None when none were given (then the kind of worker decides).
    resolved_settings: dict[str, str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cluster is not None and self.url is not None:
            raise ConfigError("Give a worker url= or a cluster=, not both.")
        if self.cluster is None and self.url is None:
            raise ConfigError("No worker: pass cluster= (a provisioned cluster) or url= (e.g. "
                              "http://127.0.0.1:9000 for `dfbench worker`).")
        # It names a folder of data_dir and a prefix of the bucket: upstream's spelling (tpch/sf10)
        # becomes dfbench's (tpch_sf10), so both spellings' results are one dataset's.
        object.__setattr__(self, "dataset", checked_dataset(self.dataset))
        if self.iterations is not None and (isinstance(self.iterations, bool) or not isinstance(self.iterations, int)
                                            or self.iterations < 1):
            raise ConfigError(f"iterations must be a whole number of at least 1 (got {self.iterations!r}).")
        if self.min_time_s < 0:
            raise ConfigError(f"min_time_s must not be negative (got {self.min_time_s!r}).")
        # A frozen record: the normalized values are set once, here.
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.queries_dir is not None:
            object.__setattr__(self, "queries_dir", Path(self.queries_dir))
        object.__setattr__(self, "resolved_settings",
                           None if self.settings is None else resolve_settings(self.settings))

    @property
    def selects_ids(self) -> bool:
        """Query ids were chosen (``--queries q3``): a partial run, merged into ``previous-*``."""
        queries = self.queries
        return isinstance(queries, str) or (queries is not None and any(isinstance(q, str) for q in queries))

    def iterations_for(self, remote: bool) -> int:
        """The iterations given, else 5 for a remote run (the CDK tooling's) and 3 for a local one."""
        if self.iterations is not None:
            return self.iterations
        return REMOTE_ITERATIONS if remote else LOCAL_ITERATIONS

    def settings_for(self, is_local_worker: bool) -> dict[str, str]:
        """The settings to send: those given, else none to dfbench's local worker (it would apply
        ``datafusion.*``, changing what a local run measures) and the CDK tooling's defaults to a real one."""
        if self.resolved_settings is not None:
            return dict(self.resolved_settings)
        return {} if is_local_worker else dict(DISTRIBUTED_DEFAULTS)
