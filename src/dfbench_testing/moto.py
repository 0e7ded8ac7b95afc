"""moto in server mode on loopback, and the environment that sends every AWS call of dfbench (real
boto3 over HTTP, through AWS_ENDPOINT_URL) to it and nowhere else."""

from __future__ import annotations

import logging
import os
import urllib.request

# moto reads these when it is imported (ARCHITECTURE.md §8): real managed policies, AMI ids checked, and
# instance types checked against the real catalogue.
MOTO_FLAGS = {
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
}


def emulator_environment(endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """Variables that send every AWS call to the emulator and make sure none can go elsewhere."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # No instance-metadata credential lookups (169.254.169.254 is not loopback).
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


# The AWS managed policies the emulator knows. moto builds every AWS managed policy (about 1,500)
# for each of its six partitions whenever IAM is reset: three seconds of every test that touched
# IAM. Only these are kept; attaching any other fails here (NoSuchEntity) although AWS would
# accept it, so a policy dfbench starts to attach must be added here.
MANAGED_POLICIES = ("AmazonSSMManagedInstanceCore",)


def _keep_only_the_managed_policies_dfbench_attaches() -> None:
    import json

    from moto.iam import models

    everything = json.loads(models.aws_managed_policies_data)
    if set(everything) != set(MANAGED_POLICIES):
        models.aws_managed_policies_data = json.dumps({name: everything[name] for name in MANAGED_POLICIES})


class MotoServer:
    """moto in server mode on 127.0.0.1, on a free port (``url``)."""

    def __init__(self) -> None:
        # Imported after the flags are set: moto reads them when it is imported.
        os.environ.update(MOTO_FLAGS)
        from moto.server import ThreadedMotoServer

        _keep_only_the_managed_policies_dfbench_attaches()

        # One log line per request would bury the test output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        # A reset drops every emulated resource of the previous test at once: seconds on a busy
        # two-core machine, where a 10 s bound failed whole runs that had nothing wrong.
        urllib.request.urlopen(request, timeout=60).read()

    def stop(self) -> None:
        self._server.stop()
