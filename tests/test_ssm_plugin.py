"""The ssm transport: Session Manager port forwarding run by the plugin, against moto.

moto implements neither StartSession nor TerminateSession: both are answered through ``Faults`` in
AWS's response shape. The plugin is a stand-in executable named ``session-manager-plugin`` that
parses its command line exactly as the real plugin receives it from the AWS CLI, then forwards
its local port to a real local worker (or fails, or never listens).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dfbench.aws.session import connect
from dfbench.errors import TransportError
from dfbench.transport.ssm_plugin import INSTALL_URL, SsmTransport, shell_command
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Faults, Recorder, python_program

INSTANCE = "i-0123456789abcdef0"
SESSION = "dfbench-user-0a1b2c3d4e5f67890"
START_RESPONSE = {
    "SessionId": SESSION,
    "TokenValue": "AAEAAdlRcmgmM1Rt0mLqMdIwdCOdU6ZrHPLrYRyhsL1Z6XDqAAAAAGl9FAKE",
    "StreamUrl": f"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/{SESSION}"
                 "?role=publish_subscribe&cell-number=AAEAAQAAAAFAKE",
}

# The stand-in: argv as awscli's StartSessionCaller passes it (sessionmanager.py), read as the
# plugin's ValidateInputAndStartSession reads it (session.go); output as its port sessions print.
STAND_IN = r'''
import json, os, signal, socket, sys, threading, time

mode = os.environ.get("STAND_IN_MODE", "forward")
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("STAND_IN_VERSION", "1.2.707.0"))
    sys.exit(0)
assert len(sys.argv) == 7, sys.argv
response_in_env = sys.argv[1].startswith("AWS_SSM_START_SESSION_RESPONSE") and sys.argv[1] in os.environ
if sys.argv[1].startswith("AWS_SSM_START_SESSION_RESPONSE"):
    response = json.loads(os.environ.pop(sys.argv[1]))
else:
    response = json.loads(sys.argv[1])
region, operation, profile, request, endpoint = sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), sys.argv[6]
assert operation == "StartSession", operation
assert set(response) == {"SessionId", "TokenValue", "StreamUrl"}, response
target = request["Target"]
with open(os.environ["STAND_IN_RECORD"], "w") as record:
    json.dump({"argv": sys.argv[1:], "response": response, "request": request,
               "response_in_env": response_in_env}, record)
print(f"\nStarting session with SessionId: {response['SessionId']}", flush=True)
if mode == "fail":
    print(f"\nAn error occurred (TargetNotConnected) when calling the StartSession operation: {target} is not connected.",
          flush=True)
    sys.exit(255)
if mode == "silent":  # and deaf to SIGTERM: only SIGKILL ends it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
local_port = int(request["Parameters"]["localPortNumber"][0])
host = os.environ.get("SSM_PLUGIN_LOCAL_HOST", "localhost")
listener = socket.create_server((host, local_port))
print(f"Port {local_port} opened for sessionId {response['SessionId']}.", flush=True)
print("Waiting for connections...", flush=True)
forward_to = int(os.environ["STAND_IN_FORWARD_PORT"])

def pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

while True:
    client, _ = listener.accept()
    upstream = socket.create_connection(("127.0.0.1", forward_to))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
'''


@pytest.fixture(scope="module")
def worker():
    with LocalWorkerProcess() as process:
        yield process


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin" / "session-manager-plugin"
    path.parent.mkdir()
    python_program(path, STAND_IN)
    monkeypatch.setenv("STAND_IN_RECORD", str(tmp_path / "record.json"))
    return path


@pytest.fixture
def ssm(aws: Any, recorder: Recorder, faults: Faults) -> Any:
    faults.respond("ssm", "StartSession", START_RESPONSE, times=10)
    faults.respond("ssm", "TerminateSession", {"SessionId": SESSION}, times=10)
    return connect(region="us-east-1").client("ssm")


def record(plugin: Path) -> dict[str, Any]:
    return json.loads((plugin.parent.parent / "record.json").read_text())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def terminated(recorder: Recorder) -> list[str]:
    return [c.params["SessionId"] for c in recorder.named("TerminateSession")]


@pytest.mark.parametrize("where", ["given path", "PATH"])
def test_missing_plugin_names_the_install_page_before_any_aws_call(ssm, recorder, tmp_path, monkeypatch, where):
    if where == "PATH":
        monkeypatch.setenv("PATH", str(tmp_path))  # no session-manager-plugin there
        transport = SsmTransport(ssm=ssm, instance_id=INSTANCE, region="us-east-1")
    else:
        transport = SsmTransport(ssm=ssm, instance_id=INSTANCE, region="us-east-1",
                                 plugin=str(tmp_path / "nowhere" / "session-manager-plugin"))
    with pytest.raises(TransportError) as caught:
        transport.__enter__()
    assert caught.value.kind == "ssm"
    assert INSTALL_URL in str(caught.value)
    assert "--via relay" in str(caught.value) and "--via ssh" in str(caught.value)
    assert recorder.calls == []
    transport.close()  # harmless after a failed start


def test_forwards_to_the_worker_and_ends_the_session(ssm, recorder, plugin, worker, monkeypatch):
    monkeypatch.setenv("STAND_IN_FORWARD_PORT", worker.url.rsplit(":", 1)[1])
    with SsmTransport(ssm=ssm, instance_id=INSTANCE, region="us-east-1", plugin=str(plugin),
                      start_timeout_s=10) as transport:
        assert transport.kind == "ssm" and INSTANCE in transport.description
        assert transport.url == f"http://127.0.0.1:{transport.local_port}"
        client = WorkerClient(transport.url)
        assert client.info()["git_commit_hash"].startswith("local-datafusion-")
        assert client.query("SELECT 1")["count"] == 1
        pid = transport.pid
        assert pid is not None and not gone(pid)
        assert terminated(recorder) == []
    assert gone(pid)
    assert transport.url == ""
    assert terminated(recorder) == [SESSION]
    transport.close()  # idempotent: no second TerminateSession
    assert terminated(recorder) == [SESSION]

    [start] = recorder.named("StartSession")
    assert start.params == {"Target": INSTANCE, "DocumentName": "AWS-StartPortForwardingSession",
                            "Parameters": {"portNumber": ["9000"], "localPortNumber": [str(transport.local_port)]}}
    # The plugin got what the AWS CLI gives it; a plugin this new reads the response (and its
    # token) from the environment, so the token is not on the command line.
    seen = record(plugin)
    assert seen["argv"][0] == "AWS_SSM_START_SESSION_RESPONSE" and seen["response_in_env"]
    assert seen["response"] == START_RESPONSE
    assert seen["argv"][1:4] == ["us-east-1", "StartSession", ""]
    assert seen["request"] == start.params
    assert seen["argv"][5] == ssm.meta.endpoint_url
    assert START_RESPONSE["TokenValue"] not in " ".join(seen["argv"])


def test_old_plugin_gets_the_response_as_its_first_argument(ssm, recorder, plugin, monkeypatch):
    monkeypatch.setenv("STAND_IN_VERSION", "1.2.497.0")  # the last version without the variable
    argv, env, session_id = shell_command(ssm, instance_id=INSTANCE, region="us-east-1", profile="bench",
                                          plugin=str(plugin))
    assert session_id == SESSION and env == {}
    assert argv[0] == str(plugin)
    assert json.loads(argv[1]) == START_RESPONSE
    assert argv[2:5] == ["us-east-1", "StartSession", "bench"]
    assert json.loads(argv[5]) == {"Target": INSTANCE}
    assert argv[6] == ssm.meta.endpoint_url
    [start] = recorder.named("StartSession")
    assert start.params == {"Target": INSTANCE}  # an interactive shell: the default document
    assert terminated(recorder) == []  # the caller ends it, after the shell


def test_shell_command_for_a_new_plugin_passes_the_response_in_the_environment(ssm, plugin):
    argv, env, _ = shell_command(ssm, instance_id=INSTANCE, region="us-east-1", plugin=str(plugin))
    assert argv[1] == "AWS_SSM_START_SESSION_RESPONSE" and argv[4] == ""
    assert json.loads(env["AWS_SSM_START_SESSION_RESPONSE"]) == START_RESPONSE


def test_plugin_that_exits_at_once_shows_its_message_and_the_session_ends(ssm, recorder, plugin, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "fail")
    transport = SsmTransport(ssm=ssm, instance_id=INSTANCE, region="us-east-1", plugin=str(plugin),
                             start_timeout_s=10)
    with pytest.raises(TransportError) as caught:
        with transport:
            pytest.fail("the transport opened")
    text = str(caught.value)
    assert "exited (code 255)" in text
    assert f"TargetNotConnected) when calling the StartSession operation: {INSTANCE} is not connected" in text
    assert terminated(recorder) == [SESSION]
    assert transport.pid is not None and gone(transport.pid)


def test_plugin_that_never_listens_times_out_and_is_killed(ssm, recorder, plugin, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "silent")
    transport = SsmTransport(ssm=ssm, instance_id=INSTANCE, region="us-east-1", plugin=str(plugin),
                             start_timeout_s=0.5)
    transport.stop_timeout_s = 0.3  # it ignores SIGTERM: SIGKILL after this
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.__enter__()
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert "did not open 127.0.0.1:" in text and "within 0.5s" in text
    assert f"Starting session with SessionId: {SESSION}" in text  # what it printed
    assert transport.pid is not None and gone(transport.pid)
    assert terminated(recorder) == [SESSION]
