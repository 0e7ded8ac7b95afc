"""The credential preflight: missing, expired, rejected credentials and unknown profiles end in one
actionable CredentialsError (exit 3) before dfbench touches EC2, S3 or IAM."""

from __future__ import annotations

import re

import pytest

import dfbench
from dfbench import cli
from dfbench.errors import CredentialsError
from dfbench_testing import Faults, MotoServer, Recorder

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PREFLIGHT = [("sts", "GetCallerIdentity")]
COMMANDS = {
    "status": ["status", "--cluster", "x"],
    "plan": ["plan", "--cluster", "x", "--count", "1"],
    "provision": ["provision", "--cluster", "x", "--count", "1"],
    "teardown": ["teardown", "--cluster", "x", "--delete-bucket"],
}


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, _ANSI.sub("", captured.out), _ANSI.sub("", captured.err)


def calls(recorder: Recorder) -> list[tuple[str, str]]:
    return [(c.service, c.operation) for c in recorder.calls]


def assert_one_error(err: str) -> str:
    """One error message (its first line starts with "error:"), no traceback; returns it."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == [lines[0]], err
    return err


@pytest.fixture
def no_credentials(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The aws fixture already points the config and credentials files at os.devnull, disables
    # the instance metadata lookup and removes container credentials: nothing is left to find.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# --- (a) no credentials at all -------------------------------------------------------------------


@pytest.mark.parametrize("argv", list(COMMANDS.values()), ids=list(COMMANDS))
def test_no_credentials_cli(
    argv: list[str], no_credentials: None, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, argv)
    assert code == 3
    assert out == ""
    message = assert_one_error(err)
    assert "Unable to locate credentials" in message
    # The three ways to authenticate, each with how to use it.
    assert "SSO profile" in message and "aws sso login --profile" in message
    assert "aws-vault exec" in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert calls(recorder) == PREFLIGHT


def test_no_credentials_library(no_credentials: None, recorder: Recorder) -> None:
    with pytest.raises(CredentialsError) as raised:
        dfbench.status("x")
    assert raised.value.exit_code == 3
    assert "No credentials found" in str(raised.value)
    assert calls(recorder) == PREFLIGHT


def test_no_credentials_with_profile_env_names_the_profile(
    no_credentials: None, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A profile that exists in no config file: botocore cannot even start looking.
    monkeypatch.setenv("AWS_PROFILE", "team-sso")
    with pytest.raises(CredentialsError) as raised:
        dfbench.status("x")
    assert "aws sso login --profile team-sso" in str(raised.value)
    assert calls(recorder) in ([], PREFLIGHT)


# --- (b) expired token ---------------------------------------------------------------------------


def expired(faults: Faults):  # type: ignore[no-untyped-def]
    return faults.error("sts", "GetCallerIdentity", "ExpiredToken",
                        "The security token included in the request is expired", status=403)


def test_expired_token_with_env_keys(faults: Faults, recorder: Recorder) -> None:
    fault = expired(faults)
    with pytest.raises(CredentialsError) as raised:
        dfbench.status("x")
    message = str(raised.value)
    assert "ExpiredToken" in message and "expired" in message
    assert "export fresh AWS_ACCESS_KEY_ID" in message
    assert "aws-vault" not in message
    assert fault.hits == 1
    assert calls(recorder) == PREFLIGHT


def test_expired_token_under_aws_vault(
    faults: Faults, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_VAULT", "myprofile")
    expired(faults)
    code, out, err = run(capsys, COMMANDS["provision"])
    assert code == 3
    assert out == ""
    message = assert_one_error(err)
    assert "ExpiredToken" in message
    assert "aws-vault session for 'myprofile'" in message
    assert "aws-vault exec" in message
    assert "export fresh" not in message
    assert calls(recorder) == PREFLIGHT


@pytest.mark.parametrize("argv", list(COMMANDS.values()), ids=list(COMMANDS))
def test_expired_token_cli_every_command(
    argv: list[str], faults: Faults, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    expired(faults)
    code, _, err = run(capsys, argv)
    assert code == 3
    message = assert_one_error(err)
    assert "error: AWS credentials problem: ExpiredToken from GetCallerIdentity" in message
    assert "export fresh AWS_ACCESS_KEY_ID" in message
    assert calls(recorder) == PREFLIGHT
    assert recorder.mutating == []


# --- (c) rejected key ----------------------------------------------------------------------------


def test_invalid_client_token_id(
    faults: Faults, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    faults.error("sts", "GetCallerIdentity", "InvalidClientTokenId",
                 "The security token included in the request is invalid.", status=403, times=2)
    with pytest.raises(CredentialsError) as raised:
        dfbench.plan(dfbench.ClusterSpec(name="x", instance_count=1))
    assert "InvalidClientTokenId" in str(raised.value)
    assert "export fresh AWS_ACCESS_KEY_ID" in str(raised.value)

    code, _, err = run(capsys, COMMANDS["teardown"])
    assert code == 3
    message = assert_one_error(err)
    assert "InvalidClientTokenId from GetCallerIdentity: The security token included in the request is invalid." \
        in message
    assert calls(recorder) == PREFLIGHT * 2


def test_invalid_client_token_id_under_aws_vault(
    faults: Faults, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_VAULT", "myprofile")
    faults.error("sts", "GetCallerIdentity", "InvalidClientTokenId",
                 "The security token included in the request is invalid.", status=403)
    with pytest.raises(CredentialsError, match="aws-vault session for 'myprofile'"):
        dfbench.status("x")
    assert calls(recorder) == PREFLIGHT


# --- (d) unknown profile -------------------------------------------------------------------------


def test_unknown_profile_cli(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, ["status", "--cluster", "x", "--profile", "nosuchprofile"])
    assert code == 3
    assert out == ""
    message = assert_one_error(err)
    assert "The config profile (nosuchprofile) could not be found" in message
    # The fix is about the profile the user named, even with keys in the environment (botocore
    # ignores them when a profile is given explicitly).
    assert "aws sso login --profile nosuchprofile" in message
    assert "export fresh" not in message
    assert calls(recorder) == []


@pytest.mark.parametrize("argv", list(COMMANDS.values()), ids=list(COMMANDS))
def test_unknown_profile_every_command(
    argv: list[str], recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, [*argv, "--profile", "nosuchprofile"])
    assert code == 3
    assert "nosuchprofile" in assert_one_error(err)
    assert calls(recorder) == []


def test_unknown_profile_library(recorder: Recorder) -> None:
    with pytest.raises(CredentialsError, match=r"nosuchprofile") as raised:
        dfbench.teardown("x", profile="nosuchprofile")
    assert raised.value.exit_code == 3
    assert calls(recorder) == []


def test_clients_are_shared_until_the_hooks_or_the_credentials_change(aws: MotoServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands in one process share clients, but never one built with other hooks (a test's
    recorder or injected faults) or from other credentials."""
    from dfbench.aws.session import connect
    from dfbench_testing import hooked

    first = connect(region="us-east-1").client("s3")
    assert connect(region="us-east-1").client("s3") is first
    assert connect(region="eu-west-1").client("s3") is not first
    recorder = Recorder()
    with hooked(recorder.hook):
        hooked_client = connect(region="us-east-1").client("s3")
        assert hooked_client is not first
        hooked_client.list_buckets()
    assert [c.operation for c in recorder.calls] == ["ListBuckets"]
    after = connect(region="us-east-1").client("s3")
    assert after is not hooked_client
    after.list_buckets()
    assert len(recorder.calls) == 1  # the recorder's handlers are not on the client used after it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "other")
    assert connect(region="us-east-1").client("s3") is not after
