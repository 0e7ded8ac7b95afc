"""EC2 Instance Connect and the instance console: what the ``ssh`` transport needs from AWS.

- ``send_ssh_public_key``: lets an ephemeral key log in to one instance as one user, for 60 s,
  with no key pair registered in EC2 and nothing left on the instance afterwards.
- ``console_host_keys``: the instance's SSH host keys as cloud-init printed them on the serial
  console at first boot, the one channel to the instance's identity that does not go through the
  (yet unverified) SSH connection itself: the transport pins them before its first connect.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Any

from botocore.exceptions import ClientError

from dfbench.errors import TransportError, error_code

# cloud-init's write-ssh-key-fingerprints prints the host public keys between these markers
# (lines of the surrounding fingerprint block come prefixed, e.g. "ec2: " or a syslog header).
BEGIN_HOST_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
END_HOST_KEYS = "-----END SSH HOST KEY KEYS-----"
_KEY_LINE = re.compile(r"((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+(AAAA[A-Za-z0-9+/]+={0,3})(?:\s+(\S+))?")


def send_ssh_public_key(client: Any, *, instance_id: str, user: str, public_key: str) -> None:
    """Push ``public_key`` (an OpenSSH line) to the instance for ``user`` with EC2 Instance Connect
    (``client`` is an ``ec2-instance-connect`` client).

    AWS keeps the key in the instance metadata for 60 seconds only: the SSH login must start within
    that time, so this is called right before every connect (and again before a reconnect). The
    instance's ec2-instance-connect package (installed on Amazon Linux 2023) makes sshd look keys
    up there. Errors that mean the instance cannot be reached this way become TransportError with
    the fix; others (credentials, throttling) are left to dfbench's AWS error translation."""
    try:
        client.send_ssh_public_key(InstanceId=instance_id, InstanceOSUser=user, SSHPublicKey=public_key)
    except ClientError as error:
        raise _translated(error, instance_id, user) from error


# What SendSSHPublicKey's errors mean for the user, by code; {instance}, {user} and {message}
# (AWS's text) are filled in.
# https://docs.aws.amazon.com/ec2-instance-connect/latest/APIReference/API_SendSSHPublicKey.html#API_SendSSHPublicKey_Errors
_FIXES = {
    "EC2InstanceNotFoundException":
        "EC2 Instance Connect cannot find instance {instance} ({message}). Check that it exists in this region "
        "(`dfbench status`); an instance launched seconds ago may need another minute.",
    "EC2InstanceStateInvalidException":
        "Instance {instance} is not running, so EC2 Instance Connect cannot push a key to it ({message}). "
        "Start it, or provision the cluster again.",
    "EC2InstanceUnavailableException":
        "Instance {instance} is temporarily unavailable to EC2 Instance Connect ({message}). Wait a few minutes "
        "and run the command again.",
    "AuthException":
        "EC2 Instance Connect refused to push a key to {instance} for user {user!r} ({message}). Your AWS identity "
        "needs ec2-instance-connect:SendSSHPublicKey on this instance (and on this OS user if the policy has an "
        "ec2:osuser condition), with valid credentials.",
    "InvalidArgsException":
        "EC2 Instance Connect rejected the request for {instance} as user {user!r}: {message}. The key must be an "
        "OpenSSH RSA or ED25519 public key, and the user must exist on the instance.",
}


def _translated(error: ClientError, instance_id: str, user: str) -> Exception:
    fix = _FIXES.get(error_code(error))
    if fix is None:
        return error
    message = str(error.response.get("Error", {}).get("Message", ""))
    return TransportError("ssh", fix.format(instance=instance_id, user=user, message=message))


def console_host_keys(ec2: Any, instance_id: str) -> list[str]:
    """The instance's SSH host public keys (``"ssh-ed25519 AAAA... root@host"`` lines) from the
    cloud-init block of its console output, or [] when there is none (yet).

    EC2 posts console output with a delay (minutes after boot), keeps the most recent 64 KB, and
    the API sends it base64-encoded; boto3 decodes it (botocore's ``decode_console_output``
    handler on after-call.ec2.GetConsoleOutput), so ``Output`` arrives as text.
    ``Latest=True`` asks for the live serial console buffer, which has the keys soon after boot,
    but only Nitro-based instances have it; the buffered output is the fallback."""
    output = ""
    try:
        output = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""
    except ClientError:
        # Not a Nitro instance (the error code is not documented): the buffered output is the way.
        # A real problem (no such instance, no permission) fails that call the same way.
        pass
    keys = parse_host_keys(output)
    if not keys:
        keys = parse_host_keys(ec2.get_console_output(InstanceId=instance_id).get("Output") or "")
    return keys


def parse_host_keys(console: str) -> list[str]:
    """The keys of the last complete host-key block in a console text (a reboot prints it
    again), one normalised ``type base64 comment`` line each; lines whose key is not valid
    (console noise, a line cut short) are left out."""
    blocks = []
    inside: list[str] | None = None
    for raw in console.splitlines():
        line = raw.replace("\r", "")
        if BEGIN_HOST_KEYS in line:
            inside = []
        elif END_HOST_KEYS in line:
            if inside is not None:
                blocks.append(inside)
            inside = None
        elif inside is not None:
            inside.append(line)
    if not blocks:
        return []
    keys: list[str] = []
    for line in blocks[-1]:
        match = _KEY_LINE.search(line)
        if match is None or not _valid_key(match.group(1), match.group(2)):
            continue
        key = " ".join(part for part in match.groups() if part)
        if key not in keys:
            keys.append(key)
    return keys


def _valid_key(kind: str, encoded: str) -> bool:
    """The base64 decodes and the blob names the same key type as the line (RFC 4253 §6.6)."""
    try:
        blob = base64.b64decode(encoded, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        return blob[4:4 + length] == kind.encode()
    except (binascii.Error, struct.error):
        return False
