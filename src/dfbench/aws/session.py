"""The one client factory: profile, region, endpoint and retry policy live here and nowhere else.

Every AWS call dfbench makes goes through a client built by ``Aws.client``. The endpoint comes
from botocore itself, which honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), so
pointing dfbench at an emulator needs no code path of its own.

Clients come from botocore directly, not through boto3: a boto3 client is the same botocore
client, and importing boto3 also imports s3transfer and its thread machinery, a third of the
start-up of a command that only lists a bucket. Uploads import s3transfer when they start
(aws/objects.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import botocore.loaders
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from dfbench import __version__
from dfbench.errors import aws_errors

# botocore's "standard" mode retries throttling (Throttling, RequestLimitExceeded, ...), transient
# 5xx answers and dropped connections with capped exponential backoff and jitter:
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
# Provisioning is a burst of control-plane calls, so allow more attempts than the default 3.
RETRY_POLICY = {"mode": "standard", "max_attempts": 10}
# EC2 reports a capacity shortage with HTTP 500, which botocore retries as a transient error: up
# to max_attempts times with backoff, minutes in the same zone. dfbench tries the next zone
# instead, so these codes reach it at once.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-codes-table-server
NOT_RETRIED = {"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity"}


def _stop_retrying_capacity_errors(response: Any = None, operation: Any = None, **_: Any) -> None:
    if response is None:
        return
    parsed = response[1]
    if parsed.get("Error", {}).get("Code") in NOT_RETRIED:
        # Raising from needs-retry ends the retry loop with the error the caller would get anyway.
        raise ClientError(parsed, operation.name)

# Parsing a service's JSON model is most of the cost of creating a client (about 0.1 s each).
# Sessions are made per command (credentials and region may differ), but the models do not
# change: one loader for the process parses each model once.
_MODEL_LOADER = botocore.loaders.create_loader()

ClientHook = Callable[[BaseClient], None]
_client_hooks: list[ClientHook] = []
_hooks_changed = 0  # bumped by every change of _client_hooks: clients built before it are not reused


def add_client_hook(hook: ClientHook) -> Callable[[], None]:
    """Call ``hook(client)`` for every client dfbench creates from now on.

    This is the extension point for request logging and inspection (botocore event handlers are
    registered on the client's ``meta.events``); the test suite uses it to record requests and
    inject AWS error responses. Returns a function that removes the hook. Clients built before
    a hook is added or removed are not handed out again, so every later call sees exactly the
    hooks present.
    """
    global _hooks_changed
    with _SHARED_LOCK:
        _client_hooks.append(hook)
        _hooks_changed += 1

    def remove() -> None:
        global _hooks_changed
        with _SHARED_LOCK:
            _client_hooks.remove(hook)
            _hooks_changed += 1

    return remove


# Building a client costs tens of milliseconds of CPU: botocore makes its class anew each time,
# EC2's with hundreds of methods. Commands run in one process (a script, `ab --cluster`'s deploys,
# the test suite) share their clients while nothing they were built from has changed: the hooks,
# and the AWS_* environment that botocore reads for credentials, endpoint and configuration.
# Clients are thread-safe; only one such context is kept, so a changed one frees the old clients.
_SHARED_LOCK = threading.Lock()
_shared: tuple[tuple[Any, ...], dict[tuple[str, str, str | None], Any]] = ((), {})


def _context() -> tuple[Any, ...]:
    return (_hooks_changed, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))


class Aws:
    """Clients for one region and credential source, created lazily and shared."""

    def __init__(self, *, region: str, profile: str | None = None) -> None:
        self.region = region
        self.profile = profile
        self.session = botocore.session.Session(profile=profile)
        self.session.register_component("data_loader", _MODEL_LOADER)
        with aws_errors(profile):
            # Reading the profile's configuration here makes an unknown profile fail now, with
            # one line (ProfileNotFound), rather than inside the first call.
            self.session.get_scoped_config()
        self._config = Config(
            region_name=region,
            retries=RETRY_POLICY,
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra=f"dfbench/{__version__}",
        )
        self._account: str | None = None

    def client(self, service: str) -> Any:
        global _shared
        with _SHARED_LOCK:
            context = _context()
            if _shared[0] != context:
                _shared = (context, {})
            clients = _shared[1]
            key = (service, self.region, self.profile)
            if key not in clients:
                client = self.session.create_client(service, region_name=self.region, config=self._config)
                if service == "ec2":
                    client.meta.events.register_first("needs-retry.ec2.RunInstances", _stop_retrying_capacity_errors)
                for hook in list(_client_hooks):
                    hook(client)
                clients[key] = client
            return clients[key]

    def presigner(self) -> Any:
        """An S3 client for signing URLs that others use (it sends nothing itself): SigV4, and
        virtual-host addressing, which names the bucket's regional endpoint
        (bucket.s3.<region>.amazonaws.com). With the default style botocore signs for the global
        one, which answers a bucket of another region younger than a day with a 307 redirect
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Redirects.html) that curl does not
        follow for a POST."""
        config = Config(signature_version="s3v4", region_name=self.region, s3={"addressing_style": "virtual"})
        return self.session.create_client("s3", region_name=self.region, config=config)

    @property
    def endpoint_url(self) -> str | None:
        return os.environ.get("AWS_ENDPOINT_URL")

    def account(self) -> str:
        """The caller's account id. Also the credential preflight: the first call of every command,
        so missing or stale credentials fail with one clear message before anything is created."""
        if self._account is None:
            with aws_errors(self.profile):
                identity = self.client("sts").get_caller_identity()
            self._account = str(identity["Account"])
        return self._account


DEFAULT_REGION = "us-east-1"


def default_bucket_name(account: str, region: str) -> str:
    """The bucket a cluster uses unless told otherwise: one per account and region, named as the
    CDK tooling named it. (Here, not in aws/bucket.py, so that finding it loads no resource code.)"""
    return f"datafusion-distributed-benchmarks-{account}-{region}"


def default_region(region: str | None = None) -> str:
    """The region to use: the one given, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
    (where the CDK tooling's benchmarks ran)."""
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def connect(*, region: str, profile: str | None = None) -> Aws:
    return Aws(region=region, profile=profile)
