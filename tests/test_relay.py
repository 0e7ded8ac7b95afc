"""The relay transport: each HTTP request runs on the instance as an SSM command that curls the
worker. The script is checked by shellcheck and run here with bash against a real local worker;
end to end, moto records the SSM commands and ``LocalAgent`` runs them as the instance's agent
would, output through GetCommandInvocation or, past its 24,000 characters, through S3.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dfbench.aws import ssm as remote
from dfbench.aws.session import connect
from dfbench.errors import QueryFailed, TransportError, WorkerUnreachable
from dfbench.transport.relay import RelayTransport, parse_relay_output, relay_script
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Faults, LocalAgent, system_tool

INSTANCE = "i-0fedcba9876543210"  # moto's SendCommand with InstanceIds needs no such instance
BUCKET = "dfbench-relay-test"


@pytest.fixture(scope="module")
def worker() -> Iterator[LocalWorkerProcess]:
    with LocalWorkerProcess() as process:
        yield process


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_here(script: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr  # the HTTP status is data: the script always succeeds
    assert done.stderr == ""
    return done.stdout


# --- the script, run here -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/info", "/?sql=SELECT%201", "/?sql=SELECT%20'$(touch%20pwned)'%20||%20`id`;x"])
def test_relay_script_passes_shellcheck(path):
    shellcheck = system_tool("shellcheck")
    script = relay_script(path, timeout_s=3600)
    done = subprocess.run([shellcheck, "--shell=bash", "-"], input=script, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_relay_script_against_the_worker(worker, tmp_path):
    port = port_of(worker.url)
    info = parse_relay_output(run_here(relay_script("/info", remote_port=port, timeout_s=10), tmp_path))
    assert info.status == 200 and info.complete
    assert WorkerClient(worker.url).info()["git_commit_hash"] in info.body

    failing = parse_relay_output(run_here(
        relay_script("/?sql=SELECT%20*%20FROM%20no_such_table", remote_port=port, timeout_s=10), tmp_path))
    assert failing.status == 500 and failing.complete
    assert "table 'datafusion.public.no_such_table' not found" in failing.body

    # Shell syntax in the path stays data: curl asks the worker for it, nothing runs here.
    odd = parse_relay_output(run_here(
        relay_script("/?sql=SELECT%20'$(touch%20pwned)'%20AS%20x;`touch%20pwned2`", remote_port=port,
                     timeout_s=10), tmp_path))
    assert odd.status in (200, 500) and not list(tmp_path.iterdir())

    nobody = parse_relay_output(run_here(relay_script("/info", remote_port=dead_port(), timeout_s=10), tmp_path))
    assert nobody.status == 0 and nobody.complete
    assert nobody.body.startswith("curl: (7)")


def test_parse_relay_output_knows_a_cut_answer():
    whole = parse_relay_output("DFBENCH-RELAY 200 11\n{\"a\": \"é\"}")
    assert (whole.status, whole.body, whole.complete) == (200, '{"a": "é"}', True)  # bytes, not characters
    cut = parse_relay_output("DFBENCH-RELAY 200 30000\n{\"plan\": \"xxxx--output truncated--")
    assert cut.status == 200 and not cut.complete and cut.declared_bytes == 30000
    with pytest.raises(TransportError, match="no DFBENCH-RELAY header"):
        parse_relay_output("bash: curl: command not found\n")
    with pytest.raises(ValueError):
        relay_script("/info HTTP/1.1\r\nHost: x", timeout_s=1)


# --- end to end: moto, the agent on this machine, the worker --------------------------------------

@contextmanager
def relay(faults: Faults, inspector: Any, worker_port: int) -> Iterator[tuple[RelayTransport, LocalAgent]]:
    plain_s3 = inspector.client("s3")
    plain_s3.create_bucket(Bucket=BUCKET)
    # moto builds its SSM backend (seconds) at the first SSM call after a reset: take that here,
    # not inside a relayed /info, which WorkerClient gives 5 s.
    inspector.client("ssm").list_commands()
    with LocalAgent(faults, s3=plain_s3, bucket=BUCKET, prefix=remote.OUTPUT_PREFIX,
                    port_map={9000: worker_port}) as agent:
        aws = connect(region="us-east-1")  # after the agent: its hook is on these clients
        with RelayTransport(ssm=aws.client("ssm"), s3=aws.client("s3"), instance_id=INSTANCE,
                            bucket=BUCKET) as transport:
            yield transport, agent


def test_worker_api_through_ssm_commands(aws, recorder, faults, inspector, worker):
    with relay(faults, inspector, port_of(worker.url)) as (transport, agent):
        assert transport.kind == "relay" and INSTANCE in transport.description
        assert transport.url.startswith("http://127.0.0.1:")
        client = WorkerClient(transport.url)
        assert client.info()["git_commit_hash"].startswith("local-datafusion-")
        answer = client.query("SELECT 1")
        assert answer["count"] == 1
        with pytest.raises(QueryFailed) as failed:
            client.query("SELECT * FROM no_such_table")
        assert failed.value.status == 500 and "no_such_table" in failed.value.text
        url = transport.url
    with pytest.raises(WorkerUnreachable):  # closed with the block
        WorkerClient(url).info()

    sends = recorder.named("SendCommand")
    assert len(sends) == 3
    for send in sends:
        params = send.params
        assert params["InstanceIds"] == [INSTANCE] and "Targets" not in params
        assert params["DocumentName"] == "AWS-RunShellScript"
        assert params["OutputS3BucketName"] == BUCKET
        assert params["OutputS3KeyPrefix"] == remote.OUTPUT_PREFIX
        assert params["TimeoutSeconds"] == 60
        assert params["Parameters"]["executionTimeout"] == ["3660"]
        [script] = params["Parameters"]["commands"]
        assert "http://127.0.0.1:9000" in script  # the instance's port; only LocalAgent rewrites it
    assert "url=http://127.0.0.1:9000/info\n" in sends[0].params["Parameters"]["commands"][0]
    assert all(run.status == "Success" for run in agent.runs.values())
    # Short answers come back in GetCommandInvocation itself: nothing read from S3.
    assert recorder.named("GetObject") == []


def test_answer_longer_than_ssm_returns_comes_through_s3(aws, recorder, faults, inspector, worker):
    sql = "SELECT repeat('x', 30000) AS long_text"
    direct = WorkerClient(worker.url).query(sql)
    assert len(direct["plan"]) > 24_000
    with relay(faults, inspector, port_of(worker.url)) as (transport, agent):
        relayed = WorkerClient(transport.url).query(sql)
    assert relayed["plan"] == direct["plan"] and relayed["count"] == direct["count"] == 1
    [run] = agent.runs.values()
    assert len(run.stdout) > 30_000
    [get] = recorder.named("GetObject")
    expected = remote.output_url(BUCKET, remote.OUTPUT_PREFIX, run.command_id, INSTANCE)
    assert f"s3://{get.params['Bucket']}/{get.params['Key']}" == expected


def test_failed_command_is_a_502_naming_the_instance(aws, recorder, faults, inspector, worker):
    def failed(params: dict[str, Any]) -> dict[str, Any]:
        return {"CommandId": params["CommandId"], "InstanceId": params["InstanceId"], "Comment": "",
                "DocumentName": "AWS-RunShellScript", "DocumentVersion": "$DEFAULT",
                "PluginName": "aws:runShellScript", "ResponseCode": 127,
                "ExecutionStartDateTime": "2026-01-01T00:00:00.000Z", "ExecutionElapsedTime": "PT0.012S",
                "ExecutionEndDateTime": "2026-01-01T00:00:00.012Z", "Status": "Failed", "StatusDetails": "Failed",
                "StandardOutputContent": "", "StandardOutputUrl": "",
                "StandardErrorContent": "/var/lib/amazon/ssm/_script.sh: line 5: curl: command not found\n",
                "StandardErrorUrl": ""}

    faults.respond("ssm", "GetCommandInvocation", failed, times=2)  # before the agent: answers first
    with relay(faults, inspector, port_of(worker.url)) as (transport, _):
        with pytest.raises(urllib.error.HTTPError) as raw:
            urllib.request.urlopen(transport.url + "/info", timeout=30)
        assert raw.value.code == 502
        text = raw.value.read().decode()
        raw.value.close()
        assert f"on {INSTANCE} ended Failed (exit code 127)" in text and "curl: command not found" in text
        with pytest.raises(WorkerUnreachable, match=f"HTTP 502: The relay command on {INSTANCE} ended Failed"):
            WorkerClient(transport.url).info()

        # Only GET is relayed.
        with pytest.raises(urllib.error.HTTPError) as post:
            urllib.request.urlopen(urllib.request.Request(transport.url + "/info", data=b"x", method="POST"),
                                   timeout=10)
        assert post.value.code == 405 and post.value.headers["Allow"] == "GET"
        post.value.close()
    assert len(recorder.named("SendCommand")) == 2


def test_worker_not_listening_on_the_instance_is_a_502(aws, faults, inspector):
    with relay(faults, inspector, dead_port()) as (transport, _):
        with pytest.raises(urllib.error.HTTPError) as raw:
            urllib.request.urlopen(transport.url + "/info", timeout=30)
        assert raw.value.code == 502
        text = raw.value.read().decode()
        raw.value.close()
    assert f"the worker on {INSTANCE} (127.0.0.1:9000) did not answer: curl: (7)" in text
