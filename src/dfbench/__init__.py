"""dfbench: provision, run and tear down distributed DataFusion benchmarks on AWS with boto3 alone.

The public API is re-exported here and loaded on first use: ``import dfbench`` (which the command
line does before anything else) costs nothing until a name is used, so ``dfbench --help`` never
pays for boto3, pydantic or DataFusion. docs/ARCHITECTURE.md §2 says where each name lives.
"""

__version__ = "0.1.0"

# Public name -> (module, name there). `exec` is the public name of worker_deploy.exec_command.
_EXPORTS = {
    "BenchmarkRun": ("dfbench.runner", "BenchmarkRun"),
    "Change": ("dfbench.models", "Change"),
    "Cluster": ("dfbench.models", "Cluster"),
    "ClusterConnection": ("dfbench.transport.connection", "ClusterConnection"),
    "ClusterSpec": ("dfbench.config", "ClusterSpec"),
    "ClusterSummary": ("dfbench.models", "ClusterSummary"),
    "Cost": ("dfbench.models", "Cost"),
    "DeployReport": ("dfbench.worker_deploy", "DeployReport"),
    "DfbenchError": ("dfbench.errors", "DfbenchError"),
    "DoctorReport": ("dfbench.checkup", "DoctorReport"),
    "Instance": ("dfbench.models", "Instance"),
    "Plan": ("dfbench.models", "Plan"),
    "SweepReport": ("dfbench.models", "SweepReport"),
    "TeardownReport": ("dfbench.models", "TeardownReport"),
    "VerifyReport": ("dfbench.verify", "VerifyReport"),
    "bench_engines": ("dfbench.engine_bench", "bench_engines"),
    "bench_local": ("dfbench.runner", "bench_local"),
    "canonical_dataset": ("dfbench.data", "canonical_dataset"),
    "clusters": ("dfbench.fleet", "list_clusters"),
    "compare": ("dfbench.comparison", "compare"),
    "deploy_worker": ("dfbench.worker_deploy", "deploy_worker"),
    "doctor": ("dfbench.checkup", "doctor"),
    "engine_status": ("dfbench.engine_setup", "engine_status"),
    "exec": ("dfbench.worker_deploy", "exec_command"),
    "generate_on_cluster": ("dfbench.oncluster", "generate_on_cluster"),
    "generate_tpch": ("dfbench.data", "generate_tpch"),
    "install_engine": ("dfbench.engine_setup", "install_engine"),
    "list_datasets": ("dfbench.data", "list_datasets"),
    "logs": ("dfbench.worker_deploy", "logs"),
    "plan": ("dfbench.provision", "plan"),
    "provision": ("dfbench.provision", "provision"),
    "pull_dataset": ("dfbench.data", "pull_dataset"),
    "remote_tables": ("dfbench.data", "remote_tables"),
    "remove_engine": ("dfbench.engine_setup", "remove_engine"),
    "run_ab": ("dfbench.ab", "run_ab"),
    "run_ab_cluster": ("dfbench.ab", "run_ab_cluster"),
    "run_benchmark": ("dfbench.runner", "run_benchmark"),
    "shell": ("dfbench.transport.shell", "shell"),
    "status": ("dfbench.provision", "status"),
    "sweep": ("dfbench.janitor", "sweep"),
    "sync_dataset": ("dfbench.data", "sync_dataset"),
    "teardown": ("dfbench.provision", "teardown"),
    "tpch_queries": ("dfbench.bench.queries", "tpch_queries"),
    "verify_aws": ("dfbench.verify", "verify_aws"),
}

__all__ = [  # spelled out for static tools; tests/test_architecture.py checks it matches _EXPORTS
    "BenchmarkRun",
    "Change",
    "Cluster",
    "ClusterConnection",
    "ClusterSpec",
    "ClusterSummary",
    "Cost",
    "DeployReport",
    "DfbenchError",
    "DoctorReport",
    "Instance",
    "Plan",
    "SweepReport",
    "TeardownReport",
    "VerifyReport",
    "__version__",
    "bench_engines",
    "bench_local",
    "canonical_dataset",
    "clusters",
    "compare",
    "deploy_worker",
    "doctor",
    "engine_status",
    "exec",
    "generate_on_cluster",
    "generate_tpch",
    "install_engine",
    "list_datasets",
    "logs",
    "plan",
    "provision",
    "pull_dataset",
    "remote_tables",
    "remove_engine",
    "run_ab",
    "run_ab_cluster",
    "run_benchmark",
    "shell",
    "status",
    "sweep",
    "sync_dataset",
    "teardown",
    "tpch_queries",
    "verify_aws",
]


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'dfbench' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # resolved once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
