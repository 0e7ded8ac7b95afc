"""The worker's secret environment: ``--secret-env NAME=ssm:/dfbench/<cluster>/<parameter>``.

``--env`` values are visible (in the SSM command's parameters, in ``worker.service``, in the
bucket's ``latest``). A secret is given by reference instead: the name of an SSM Parameter Store
parameter (a SecureString, typically) under ``/dfbench/<cluster>/``, the only prefix the
cluster's instance role may read (:func:`dfbench.aws.iam.worker_policy`). dfbench never reads
the value; the instance does, at every start of the worker (``SECRETS_SCRIPT`` in
:mod:`dfbench.worker.scripts`), into a 0600 file under /run.

Everything here is checked before any AWS call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dfbench.aws.iam import secret_parameters_prefix
from dfbench.errors import ConfigError
from dfbench.worker.scripts import ENV_KEY

SOURCE = "ssm:"
# Set by dfbench itself in every unit: a secret of that name would be overridden, or override it.
RESERVED_NAMES = ("AWS_REGION", "POD_IP")
# SSM's naming constraints (PutParameter, Name): a-zA-Z0-9_.- between the slashes, at most 15
# levels, and 1011 characters for the name (the 2048 of the API model include the ARN's room).
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_MAX_LEVELS = 15
_MAX_NAME = 1011


def secret_parameters(secrets: Mapping[str, str] | None, *, cluster: str,
                      env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``secrets`` ({NAME: "ssm:/dfbench/<cluster>/<parameter>"}) as {NAME: parameter name},
    each checked: NAME an environment variable name used by neither ``env`` nor dfbench, the
    reference an SSM parameter under this cluster's prefix, spelled as SSM accepts."""
    prefix = secret_parameters_prefix(cluster)
    example = f"API_TOKEN={SOURCE}{prefix}api-token"
    checked: dict[str, str] = {}
    for name, reference in (secrets or {}).items():
        if not ENV_KEY.match(name):
            raise ConfigError(f"--secret-env {name}=…: {name!r} is not an environment variable name (upper-case "
                              f"letters, digits and _, not starting with a digit), e.g. {example}.")
        if name in RESERVED_NAMES:
            raise ConfigError(f"--secret-env {name}: dfbench sets {name} itself; give the secret another name.")
        if name in (env or {}):
            raise ConfigError(f"{name} is given both as --env and as --secret-env: keep one.")
        if not reference.startswith(SOURCE):
            raise ConfigError(f"--secret-env {name}: give an SSM parameter, not the value: {name}={SOURCE}{prefix}"
                              "<parameter> (put the value there first: aws ssm put-parameter --type SecureString).")
        parameter = reference.removeprefix(SOURCE)
        parts = parameter.removeprefix(prefix).split("/")
        if not parameter.startswith(prefix) or parameter == prefix:
            raise ConfigError(f"--secret-env {name}: {parameter!r} is not under {prefix}, the only prefix the "
                              f"instances of cluster {cluster!r} may read, e.g. {example}.")
        if not all(_PART.match(part) and part not in (".", "..") for part in parts):
            raise ConfigError(f"--secret-env {name}: {parameter!r} is not an SSM parameter name: letters, digits "
                              f"and _ . - between single slashes, no trailing slash, e.g. {prefix}api-token.")
        if len(parameter) > _MAX_NAME or parameter.count("/") > _MAX_LEVELS:
            raise ConfigError(f"--secret-env {name}: {parameter[:60]!r}… is longer than SSM allows (at most "
                              f"{_MAX_NAME} characters and {_MAX_LEVELS} levels).")
        checked[name] = parameter
    return checked
