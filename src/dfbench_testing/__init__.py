"""The emulator harness: dfbench's own tests and benchmark scripts run dfbench against it, and so can
scripts built on dfbench. AWS is moto in server mode on loopback, reached by real boto3 over HTTP;
what moto does not do, a stand-in here does the way AWS does, and what cannot be emulated (sshd, the
agent running a command, the worker) runs for real on this machine.

Installed with dfbench, needing its ``test`` extra (moto[server]; pytest for ``system_tool``).
dfbench never imports it: ``import dfbench`` loads neither this package nor moto.

- ``MotoServer``, ``emulator_environment`` (moto.py): moto on 127.0.0.1, with the flags that make
  it check what AWS checks (AMI ids, instance types, real managed policies), and the variables
  that send every AWS call there and nowhere else.
- ``Recorder`` (recording.py): every API call dfbench makes, once per call (not per retry), with the
  parameters dfbench passed.
- ``Faults``, ``Interrupt`` (faults.py): chosen calls answered, before they reach moto, with real
  AWS error responses (throttling, capacity, IAM propagation, quotas), AWS success responses or a
  dropped connection, or carried out and their answer lost (``lose_answer``); a run interrupted right
  after its n-th change at AWS. The answers are in each service's wire format (wire.py), so botocore
  parses and retries them as it would AWS's.
- ``MotoGaps`` (gaps.py), where moto departs from AWS: CreateBucket's ``Tags`` are applied (moto
  ignores them); bucket policies are kept here and answered as AWS answers them (moto treats any
  Deny statement as denying everything, so dfbench's TLS-only policy would lock every call out);
  a CreateHostedZone whose CallerReference was used before (its zone live or deleted) is refused
  with HostedZoneAlreadyExists, as Route 53 refuses it (moto makes a second zone).
- ``NotYetVisible`` (consistency.py): EC2's and IAM's eventual consistency: the first calls naming
  a VPC, subnet, security group, internet gateway, route table, role or instance profile created
  moments before fail as AWS fails them then (moto knows every resource at once).
- ``LaunchTokens`` (launches.py): RunInstances' ClientToken remembered as EC2 remembers it (the
  same token returns the first launch's instances, terminated ones included, or fails with
  IdempotentParameterMismatch for other parameters), and DescribeInstances' ``client-token``
  filter; moto has neither.
- ``RequestChecks``, ``Ec2Rules`` (strict.py): requests refused as AWS refuses them where moto
  accepts them: every parameter against its service model's patterns, enums and limits (botocore
  checks none of these but ``min``), and a table of EC2's server-side rules (an instance type of
  another architecture than the AMI's, io2 without Iops), in an account opted in to a Local Zone
  (``LOCAL_ZONE``) that dfbench must never pick by itself.
- ``ServiceQuotas``, ``PolicySimulator`` (account.py), what ``dfbench doctor`` asks that moto
  cannot answer: EC2's vCPU quotas (moto's Service Quotas knows VPC's only) and IAM's
  SimulatePrincipalPolicy (absent from moto), answered as AWS answers them.
- ``PriceList`` (pricing.py): the Price List API's GetProducts (moto has none), over a small
  AmazonEC2 price list holding, beside each product dfbench wants, the neighbours a missing
  filter would let through at other prices; answered from its endpoint regions only.
- ``FakeSsm``, ``LocalAgent`` (ssm.py), the SSM agent's side of Run Command, which moto lacks:
  DescribeInstanceInformation and ListCommandInvocations from a script of states (``FakeSsm``);
  each SendCommand's script run here with bash and GetCommandInvocation answered as AWS answers it
  (``LocalAgent``): InvocationDoesNotExist right after sending, InProgress, then the final status
  with the output cut as the agent cuts it, the full streams written to S3 where the agent writes
  them; given an EC2 client, also commands sent to a tag (a deploy), with the polls that follow them.
- ``StandinSystemd`` (systemd.py), ``aws_cli``: an instance's programs for the install script:
  systemctl for ``worker.service``, starting the command a test gave for the installed build's
  sha256, and the AWS CLI commands the instance scripts run (``s3 cp``, ``ssm get-parameter``)
  answered by the emulator.
- ``resolver``: an instance's ``getent ahostsv4`` for the names of Route 53 private zones, answered
  from the emulator's records (moto keeps them; nothing resolves them), for the verify-aws script.
- ``InstanceSide``, ``cloud_init_console`` (instance.py), what an instance does for SSH: console
  output holding the host key as cloud-init logs it (moto's has none), and a key sent with EC2
  Instance Connect let into the sshd that stands in for the instance (moto only records it).
- ``Imds`` (imds.py): the instance metadata service, IMDSv2 only, on loopback.
- ``GitHubStandin`` (github.py): the GitHub REST endpoints ``dfbench github run`` calls
  (permission, reactions, issue comments, pull requests, commits) on loopback, recording every
  request and refusing one without the token or the API version header; rate-limit answers on
  demand.
- ``launched_cluster`` (cluster.py): a Cluster record over instances launched in moto directly, for
  work that needs instances and a bucket but not a whole provision.
- ``post_policy_problems`` (s3post.py): S3's check of a POST upload's form fields against the
  policy signed for it, which moto does not make; applied to what a stand-in instance posted.
- ``Sshd`` (sshd.py): a real OpenSSH server on loopback, the far end of the SSH transport.
- ``system_tool``, ``worker_binary`` (tools.py): a system program a test runs (or a skip saying how
  to get it), and a file that passes dfbench's worker executable check.
- ``StandInCargo``, ``OLD_LAYOUT``, ``NEW_LAYOUT``, ``cargo_metadata`` (cargo.py): a ``cargo`` on PATH
  answering ``cargo metadata`` as cargo does for upstream's two worker layouts, and recording the
  ``zigbuild`` it is asked for while copying a prepared worker binary where cargo writes it.
- ``hooked`` (hooks.py): the stand-ins installed on every client dfbench makes, for one block.
- ``TrinoStandIn`` (trino.py): a Trino coordinator's client protocol on loopback (statements,
  ``nextUri`` pages, stats, error objects, ``/v1/info``), answering with DataFusion over a data
  folder and refusing what Trino's grammar and types refuse; for dfbench's Trino adapter.
- ``duckdb_over``, ``reference_rows`` (reference.py, imported on its own: it loads DuckDB): a dataset's
  tables in DuckDB, and the rows DuckDB returns for each query, the reference the worker's rows
  are compared with.
"""

from dfbench_testing.account import PolicySimulator, ServiceQuotas
from dfbench_testing.cargo import NEW_LAYOUT, OLD_LAYOUT, StandInCargo, cargo_metadata
from dfbench_testing.cluster import launched_cluster
from dfbench_testing.consistency import NotYetVisible
from dfbench_testing.faults import Faults, Interrupt
from dfbench_testing.gaps import MotoGaps
from dfbench_testing.github import GitHubStandin
from dfbench_testing.hooks import hooked
from dfbench_testing.imds import Imds
from dfbench_testing.instance import InstanceSide, cloud_init_console
from dfbench_testing.launches import LaunchTokens
from dfbench_testing.moto import MOTO_FLAGS, MotoServer, emulator_environment
from dfbench_testing.pricing import PriceList
from dfbench_testing.recording import READ_PREFIXES, Call, Recorder
from dfbench_testing.s3post import post_policy_problems
from dfbench_testing.sshd import Sshd
from dfbench_testing.ssm import PLUGIN_OUTPUT_MAX, FakeSsm, LocalAgent, Run, agent_output
from dfbench_testing.strict import LOCAL_ZONE, Ec2Rules, RequestChecks
from dfbench_testing.systemd import StandinSystemd
from dfbench_testing.tools import python_program, system_tool, worker_binary
from dfbench_testing.trino import TrinoStandIn
from dfbench_testing.wire import console_response, error_response, json_response

__all__ = [
    "LOCAL_ZONE",
    "MOTO_FLAGS",
    "NEW_LAYOUT",
    "OLD_LAYOUT",
    "PLUGIN_OUTPUT_MAX",
    "READ_PREFIXES",
    "Call",
    "Ec2Rules",
    "FakeSsm",
    "Faults",
    "GitHubStandin",
    "Imds",
    "InstanceSide",
    "Interrupt",
    "LaunchTokens",
    "LocalAgent",
    "MotoGaps",
    "MotoServer",
    "NotYetVisible",
    "PolicySimulator",
    "PriceList",
    "Recorder",
    "RequestChecks",
    "Run",
    "ServiceQuotas",
    "Sshd",
    "StandInCargo",
    "StandinSystemd",
    "TrinoStandIn",
    "agent_output",
    "cargo_metadata",
    "cloud_init_console",
    "console_response",
    "emulator_environment",
    "error_response",
    "hooked",
    "json_response",
    "launched_cluster",
    "post_policy_problems",
    "python_program",
    "system_tool",
    "worker_binary",
]
