"""Generating a dataset on the cluster: instances launched in moto (``launched_cluster``), each
stand-in instance's SSM command run on this machine by ``LocalAgent`` (the real generator from the
wheel, the real curl uploading through presigned POSTs to moto), and the bucket compared file by
file with a local generation of the same partitions."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli import main
from dfbench.data import generate_tpch, read_manifest, sync_dataset
from dfbench.data.oncluster import assign, generate_script
from dfbench.data.tpch import TPCH
from dfbench.errors import CommandFailed, ConfigError
from dfbench.oncluster import STATE_PREFIX, OnClusterReport, generate_on_cluster
from dfbench_testing import (
    Faults,
    Interrupt,
    LocalAgent,
    Recorder,
    hooked,
    launched_cluster,
    post_policy_problems,
    system_tool,
)

SF = "0.01"
PARTS = 2
# Long enough for two generator runs on a loaded machine once DFBENCH_TIME_SCALE shrinks it.
TIMEOUT_S = 86_400
DATASET = "tpch_sf0.01"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same dataset generated on this machine with the same partitions."""
    folder = tmp_path_factory.mktemp("local")
    return generate_tpch(SF, partitions=PARTS, data_dir=folder, progress=False).path


@pytest.fixture
def cluster(aws: Any, inspector: Any) -> dfbench.Cluster:
    found = launched_cluster(inspector, name="gen", count=2, bucket="dfbench-generate-test")
    inspector.client("ssm").list_commands()  # moto builds its SSM backend here, not inside a wait
    return found


def generate(cluster: dfbench.Cluster, progress: bool = False) -> OnClusterReport:
    return generate_on_cluster(cluster, scale_factor=SF, partitions=PARTS, progress=progress, timeout_s=TIMEOUT_S)


def agent(faults: Faults, inspector: Any, cluster: dfbench.Cluster,
          environment: dict[str, dict[str, str]] | None = None) -> LocalAgent:
    return LocalAgent(faults, s3=inspector.client("s3"), bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                      online=[i.instance_id for i in cluster.instances], environment=environment)


def bucket_files(inspector: Any, bucket: str) -> dict[str, str]:
    """sha256 of every object under the dataset's prefix, by path inside the dataset."""
    s3 = inspector.client("s3")
    found = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{DATASET}/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        found[item["Key"].removeprefix(f"{DATASET}/")] = hashlib.sha256(body).hexdigest()
    return found


def local_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*.parquet")}


def remote_manifest(inspector: Any, bucket: str) -> dict[str, Any] | None:
    s3 = inspector.client("s3")
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=f"{DATASET}/manifest.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def assert_same_as_local(inspector: Any, bucket: str, local: Path) -> None:
    """The bucket's dataset is the local one: the same files, byte for byte, and a manifest
    listing the same files, sizes, sha256 and row counts."""
    remote = bucket_files(inspector, bucket)
    assert remote.pop("manifest.json")
    assert remote == local_files(local)
    document = remote_manifest(inspector, bucket)
    assert document is not None
    expected = read_manifest(local)
    assert expected is not None
    assert document["tables"] == {t: info.model_dump(mode="json") for t, info in expected.tables.items()}
    assert (document["partitions"], document["compression"], document["dataset"]) == (PARTS, "SNAPPY", DATASET)
    assert set(document["etags"]) == set(remote)


def recording_curl(folder: Path) -> dict[str, str]:
    """A PATH whose curl writes its arguments to a file of ``folder`` (one per call), then runs
    the real curl: what an instance posted, to check against S3's rules."""
    tools = folder / "bin"
    tools.mkdir(parents=True)
    (tools / "curl").write_text(f"#!/bin/bash\nprintf '%s\\0' \"$@\" >\"$(mktemp {folder}/call.XXXXXX)\"\n"
                                f"exec {shutil.which('curl')} \"$@\"\n")
    (tools / "curl").chmod(0o755)
    return {"PATH": f"{tools}:{os.environ['PATH']}"}


def posted_forms(folder: Path) -> list[dict[str, str]]:
    """The form fields of every POST the recording curl made (``--form-string`` and ``-F``)."""
    forms = []
    for call in sorted(folder.glob("call.*")):
        args = call.read_bytes().decode().split("\0")[:-1]
        form = {}
        for flag, value in itertools.pairwise(args):
            if flag in ("--form-string", "-F"):
                name, _, text = value.partition("=")
                form[name] = text
        if form:
            forms.append(form)
    return forms


def test_the_bucket_holds_a_local_generation_byte_for_byte_and_the_manifest_comes_last(
        cluster: dfbench.Cluster, faults: Faults, recorder: Recorder, inspector: Any, local: Path,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = recording_curl(tmp_path / "curl")
    with agent(faults, inspector, cluster, {i.instance_id: path for i in cluster.instances}) as stand_ins:
        report = generate(cluster, progress=True)

    assert_same_as_local(inspector, cluster.bucket, local)
    assert (report.generated, report.reused, report.manifest_written) == ([1, 2], [], True)
    # One command, to every instance, the parts dealt evenly; each instance ran its own share.
    [send] = recorder.named("SendCommand")
    first, second = (i.instance_id for i in cluster.instances)
    assert send.params["InstanceIds"] == [first, second]
    assert [(s.instance_id, s.parts, s.done) for s in report.rounds[0]] == [(first, [1], [1]), (second, [2], [2])]
    assert {run.instance_id for run in stand_ins.runs.values()} == {first, second}
    # Progress per instance: the files of its parts that reached the bucket (TPC-H's part 1 holds
    # the two tables written whole).
    err = capsys.readouterr().err
    assert f"{first} (gen-0): parts 1: 8 file(s)" in err and f"{second} (gen-1): parts 2: 6 file(s)" in err
    # The generator went to the bucket once, by sha256, beside the worker's artifacts.
    key = f".dfbench/artifacts/tpchgen-cli/{report.generator_sha256}/tpchgen-cli"
    assert inspector.client("s3").head_object(Bucket=cluster.bucket, Key=key)["ContentLength"] > 0
    # Every upload is one S3 would take: its fields satisfy the policy dfbench signed, which admits
    # nothing outside the dataset's prefix (moto checks none of it).
    forms = posted_forms(tmp_path / "curl")
    sizes = {o["Key"]: o["Size"] for o in inspector.client("s3").list_objects_v2(
        Bucket=cluster.bucket, Prefix=f"{DATASET}/")["Contents"]}
    assert sorted(f["key"] for f in forms) == sorted(k for k in sizes if k.endswith(".parquet"))
    for form in forms:
        assert post_policy_problems(form, sizes[form["key"]], bucket=cluster.bucket) == []
    elsewhere = {**forms[0], "key": ".dfbench/artifacts/worker/latest"}
    assert post_policy_problems(elsewhere, 10, bucket=cluster.bucket) == [
        f"key is '.dfbench/artifacts/worker/latest', the policy requires it to start with '{DATASET}/'"]
    # The manifest is the last thing written, and written once.
    writes = [c for c in recorder.calls if c.service == "s3" and c.mutating]
    assert writes[-1].operation == "PutObject" and writes[-1].params["Key"] == f"{DATASET}/manifest.json"
    assert [c for c in writes[:-1] if c.params.get("Key") == f"{DATASET}/manifest.json"] == []

    # Again: complete, nothing sent.
    recorder.clear()
    again = generate(cluster)
    assert (again.generated, again.manifest_written) == ([], False)
    assert recorder.named("SendCommand") == []


def tool(folder: Path, name: str, text: str) -> dict[str, str]:
    """A PATH with ``text`` as the program ``name`` before the real one."""
    folder.mkdir()
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_failed_and_lossy_instances_are_named_and_their_parts_made_by_the_one_left(
        aws: Any, faults: Faults, recorder: Recorder, inspector: Any, local: Path, tmp_path: Path) -> None:
    cluster = launched_cluster(inspector, name="gen", count=3, bucket="dfbench-generate-test")
    broken, lossy, spare = (i.instance_id for i in cluster.instances)
    environment = {
        # The broken instance cannot reach S3: its curl fails as curl does without a route.
        broken: tool(tmp_path / "broken", "curl", "#!/bin/bash\n"
                     "echo 'curl: (7) Failed to connect to s3.amazonaws.com port 443' >&2\nexit 7\n"),
        # The lossy instance's uploads lose their end on the way: it reports the files it hashed,
        # the bucket holds the first 100 bytes of each.
        lossy: tool(tmp_path / "lossy", "curl", f"""#!/bin/bash
args=()
for arg in "$@"; do
    if [[ $arg == file=@* ]]; then
        head -c 100 -- "${{arg#file=@}}" >"${{arg#file=@}}.cut"
        arg="$arg.cut"
    fi
    args+=("$arg")
done
exec {shutil.which("curl")} "${{args[@]}}"
"""),
    }
    with agent(faults, inspector, cluster, environment):
        report = generate(cluster)

    assert_same_as_local(inspector, cluster.bucket, local)
    first_round, second_round = report.rounds
    # Two parts: the first command went to the first two instances only.
    assert [(s.instance_id, s.parts) for s in first_round] == [(broken, [1]), (lossy, [2])]
    failed, cut = first_round
    assert (failed.status, failed.exit_code, failed.done) == ("Failed", 7, [])
    assert "Failed to connect to s3.amazonaws.com" in failed.output_tail
    # The lossy one's script ended well, but nothing it reported is in the bucket as reported.
    assert (cut.status, cut.done, cut.ok) == ("Success", [], False)
    assert [(s.instance_id, s.parts, s.done) for s in second_round] == [(spare, [1, 2], [1, 2])]
    assert [c.params["InstanceIds"] for c in recorder.named("SendCommand")] == [[broken, lossy], [spare]]


def test_with_every_instance_failing_no_manifest_is_written_and_the_error_names_them(
        cluster: dfbench.Cluster, faults: Faults, inspector: Any, tmp_path: Path) -> None:
    path = tool(tmp_path / "no-nproc", "nproc", "#!/bin/bash\necho 'nproc: cannot run here' >&2\nexit 1\n")
    with agent(faults, inspector, cluster, {i.instance_id: path for i in cluster.instances}):
        with pytest.raises(CommandFailed) as raised:
            generate(cluster)
    message = str(raised.value)
    assert set(raised.value.failed) == {i.instance_id for i in cluster.instances}
    assert "nproc: cannot run here" in message and "no manifest written" in message
    assert remote_manifest(inspector, cluster.bucket) is None


def test_an_interrupted_run_leaves_no_manifest_and_the_next_makes_only_what_is_missing(
        cluster: dfbench.Cluster, faults: Faults, recorder: Recorder, inspector: Any, local: Path) -> None:
    s3 = inspector.client("s3")

    def records() -> list[str]:
        listed = s3.list_objects_v2(Bucket=cluster.bucket, Prefix=f"{STATE_PREFIX}/{DATASET}/")
        return [item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", [])]

    def interrupted(after: int) -> None:
        interrupt = Interrupt(after=after)
        with agent(faults, inspector, cluster), hooked(interrupt.hook), pytest.raises(KeyboardInterrupt):
            generate(cluster)
        assert remote_manifest(inspector, cluster.bucket) is None

    # A first run's changes: the generator's upload, the command, one record per verified part,
    # the manifest. Stopped right after the command: the instances upload their parts, unrecorded.
    interrupted(2)
    assert records() == []
    # The next run makes both parts again (the generator is in the bucket: its changes are the
    # command, then the records), and is stopped after the first part's record:
    interrupted(2)
    assert records() == ["part-1.json"]
    # The next sends part 2 only, and is stopped after its record, right before the manifest.
    recorder.clear()
    interrupted(2)
    [send] = recorder.named("SendCommand")
    assert "dfbench_parts=(2)" in send.params["Parameters"]["commands"][0]
    assert "dfbench_parts=(1)" not in send.params["Parameters"]["commands"][0]
    assert records() == ["part-1.json", "part-2.json"]
    # The third sends nothing and writes the manifest.
    recorder.clear()
    report = generate(cluster)
    assert (report.reused, report.generated, report.manifest_written) == ([1, 2], [], True)
    assert recorder.named("SendCommand") == []
    assert_same_as_local(inspector, cluster.bucket, local)


def test_parts_are_dealt_evenly_in_order() -> None:
    assert assign([1, 2, 3, 4, 5, 6, 7], ["i-a", "i-b", "i-c"]) == {"i-a": [1, 4, 7], "i-b": [2, 5], "i-c": [3, 6]}
    assert assign([5, 2], ["i-a", "i-b", "i-c"]) == {"i-a": [2], "i-b": [5]}


def script_for(generator_url: str, post_fields: dict[str, str]) -> str:
    return generate_script(spec=TPCH, scale_factor=SF, partitions=PARTS, compression="SNAPPY", prefix=f"{DATASET}/",
                           generator_url=generator_url, generator_sha256="0" * 64,
                           post_url="https://dfbench-generate-test.s3.amazonaws.com/", post_fields=post_fields,
                           shares={"i-0123456789abcdef0": [1], "i-0123456789abcdef1": [2]})


def test_the_script_passes_shellcheck() -> None:
    # Values shaped as a presigned GET and a presigned POST's fields are.
    script = script_for("https://dfbench-generate-test.s3.amazonaws.com/.dfbench/artifacts/tpchgen-cli/x?"
                        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0f3a",
                        {"Content-Type": "application/vnd.apache.parquet", "policy": "eyJleHBpcmF0aW9u+/=",
                         "x-amz-signature": "0f3a"})
    result = subprocess.run([system_tool("shellcheck"), "--shell=bash", "-"], input=script, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_values_reach_the_script_as_text_and_an_unknown_instance_stops_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = f"$(touch {marker})'\"`touch {marker}`"
    script = script_for(f"https://example.invalid/{hostile}", {"policy": hostile})
    result = subprocess.run(["bash", "-c", script + 'printf "%s\\n" "$dfbench_generator_url"'], capture_output=True,
                            text=True, check=False, env={"PATH": os.environ["PATH"], "AWS_SSM_INSTANCE_ID": "i-1"})
    assert result.returncode == 5 and "no parts for instance 'i-1'" in result.stderr
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"Not an instance id"):
        generate_script(spec=TPCH, scale_factor=SF, partitions=PARTS, compression="SNAPPY", prefix=f"{DATASET}/",
                        generator_url="u", generator_sha256="0" * 64, post_url="u", post_fields={},
                        shares={"i-1; reboot": [1]})
    with pytest.raises(ConfigError, match=r"within 1..2"):
        script_for_parts = {"i-0123456789abcdef0": [3]}
        generate_script(spec=TPCH, scale_factor=SF, partitions=PARTS, compression="SNAPPY", prefix=f"{DATASET}/",
                        generator_url="u", generator_sha256="0" * 64, post_url="u", post_fields={},
                        shares=script_for_parts)


def test_pull_fetches_a_complete_dataset_checked_against_its_manifest(
        aws: Any, recorder: Recorder, inspector: Any, local: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bucket = "dfbench-pull-test"
    inspector.client("s3").create_bucket(Bucket=bucket)
    sync_dataset(DATASET, bucket=bucket, data_dir=local.parent, progress=False)
    target = tmp_path / "pulled"
    command = ["data", "pull", DATASET, "--bucket", bucket, "--data-dir", str(target)]

    assert main(command) == 0
    assert f"pulled {target / DATASET}: " in capsys.readouterr().out
    assert local_files(target / DATASET) == local_files(local)
    pulled = read_manifest(target / DATASET)
    assert pulled is not None and pulled.tables == read_manifest(local).tables and pulled.etags == {}

    # A damaged file is fetched again, alone; the rest is kept.
    damaged = target / DATASET / "orders" / "2.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"X")
    recorder.clear()
    assert main(command) == 0
    assert local_files(target / DATASET) == local_files(local)
    fetched = {c.params["Key"] for c in recorder.named("GetObject")} - {f"{DATASET}/manifest.json"}
    assert fetched == {f"{DATASET}/orders/2.parquet"}
    assert main(command) == 0
    assert "complete, nothing to fetch" in capsys.readouterr().out

    # Without a manifest the bucket's copy is not a dataset: nothing is fetched.
    inspector.client("s3").delete_object(Bucket=bucket, Key=f"{DATASET}/manifest.json")
    assert main(["data", "pull", DATASET, "--bucket", bucket, "--data-dir", str(tmp_path / "other")]) == 2
    assert "has no manifest" in capsys.readouterr().err
    assert not (tmp_path / "other" / DATASET).exists()


def test_bad_input_is_refused_in_one_line_before_any_aws_call(
        aws: Any, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_linux = tmp_path / "tpchgen-cli"
    not_linux.write_text("#!/bin/sh\n")
    for argv, expected in (
            (["--sf", "many"], "scale factor must be a positive number"),
            (["--sf", "1", "--partitions", "0"], "partitions must be a whole number"),
            (["--sf", "1", "--generator", str(not_linux)], "cannot run on the instances"),
    ):
        assert main(["data", "generate", "--on-cluster", *argv]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert recorder.calls == []
