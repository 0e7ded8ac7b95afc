"""dfbench: provision, run and tear down distributed DataFusion benchmarks on AWS with boto3 alone."""

__version__ = "0.1.0"

from dfbench.config import ClusterSpec  # noqa: E402
from dfbench.errors import DfbenchError  # noqa: E402
from dfbench.models import Change, Cluster, Instance, Plan, TeardownReport  # noqa: E402
from dfbench.cluster import plan, provision, status, teardown  # noqa: E402
from dfbench.data import generate_tpch, list_datasets, remote_tables, sync_dataset  # noqa: E402
from dfbench.bench.queries import tpch_queries  # noqa: E402
from dfbench.worker_deploy import DeployReport, deploy_worker, logs  # noqa: E402
from dfbench.worker_deploy import exec_command as exec  # noqa: E402, A001 - the public name DESIGN gives it
from dfbench.comparison import compare  # noqa: E402
from dfbench.runner import BenchmarkRun, bench_local, run_benchmark  # noqa: E402
from dfbench.transport import ClusterConnection  # noqa: E402
from dfbench.transport.shell import shell  # noqa: E402

__all__ = [
    "BenchmarkRun",
    "Change",
    "Cluster",
    "ClusterConnection",
    "ClusterSpec",
    "DeployReport",
    "DfbenchError",
    "Instance",
    "Plan",
    "TeardownReport",
    "__version__",
    "bench_local",
    "compare",
    "deploy_worker",
    "exec",
    "generate_tpch",
    "list_datasets",
    "logs",
    "plan",
    "provision",
    "remote_tables",
    "run_benchmark",
    "shell",
    "status",
    "sync_dataset",
    "teardown",
    "tpch_queries",
]
