"""The one client factory: profile, region, endpoint and retry policy live here and nowhere else.

Every AWS call dfbench makes goes through a client built by ``Aws.client``. The endpoint comes
from botocore itself, which honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), so
pointing dfbench at an emulator needs no code path of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from dfbench import __version__
from dfbench.errors import aws_errors

# botocore's "standard" mode retries throttling (Throttling, RequestLimitExceeded, ...), transient
# 5xx answers and dropped connections with capped exponential backoff and jitter:
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
# Provisioning is a burst of control-plane calls, so allow more attempts than the default 3.
RETRY_POLICY = {"mode": "standard", "max_attempts": 10}

ClientHook = Callable[[BaseClient], None]
_client_hooks: list[ClientHook] = []


def add_client_hook(hook: ClientHook) -> Callable[[], None]:
    """Call ``hook(client)`` for every client dfbench creates from now on.

    This is the extension point for request logging and inspection (botocore event handlers are
    registered on the client's ``meta.events``); the test suite uses it to record requests and
    inject AWS error responses. Returns a function that removes the hook.
    """
    _client_hooks.append(hook)
    return lambda: _client_hooks.remove(hook)


class Aws:
    """Clients for one region and credential source, created lazily and shared."""

    def __init__(self, *, region: str, profile: str | None = None) -> None:
        self.region = region
        self.profile = profile
        with aws_errors(profile):
            self.session = boto3.Session(profile_name=profile, region_name=region)
        self._config = Config(
            region_name=region,
            retries=RETRY_POLICY,  # type: ignore[arg-type]
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra=f"dfbench/{__version__}",
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._account: str | None = None

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                client = self.session.client(service, config=self._config)
                for hook in list(_client_hooks):
                    hook(client)
                self._clients[service] = client
            return self._clients[service]

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


def connect(*, region: str, profile: str | None = None) -> Aws:
    return Aws(region=region, profile=profile)
