"""SSH keys as dfbench handles them: the ephemeral key pushed through EC2 Instance Connect,
OpenSSH public key lines, and fingerprints as ``ssh-keygen -l`` prints them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import struct
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dfbench.errors import ConfigError

EPHEMERAL_COMMENT = "dfbench-ephemeral"


def fingerprint(key: paramiko.PKey | bytes) -> str:
    """A key's fingerprint as OpenSSH prints it (``ssh-keygen -l``, the instance console):
    ``SHA256:`` and the unpadded base64 of the SHA-256 of the public key blob."""
    blob = key if isinstance(key, bytes) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_public_line(line: str) -> tuple[str, bytes]:
    """(key type, public key blob) of an OpenSSH public key line ``type base64 [comment]``; the
    blob starts with its own type, which must agree."""
    parts = line.split()
    if len(parts) < 2:
        raise ConfigError(f"Not an SSH public key line: {line!r} (expected 'ssh-ed25519 AAAA... comment').")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ConfigError(f"Not an SSH public key line: {line!r} (its key is not valid base64).") from None
    if inner != parts[0]:
        raise ConfigError(f"SSH public key line {line!r} says {parts[0]} but holds a {inner} key.")
    return parts[0], blob


def key_type_of_algorithm(algorithm: str) -> str:
    # RFC 8332: RSA keys ("ssh-rsa") are used with the rsa-sha2-256/512 signature algorithms.
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


class EphemeralKey:
    """A fresh ed25519 key pair that lives in memory for one command: its public half is pushed
    with EC2 Instance Connect, so no key pair is ever registered in EC2 or left on disk.

    Generated with ``cryptography`` because paramiko can load ed25519 keys but not create them."""

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self._openssh = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption())
        self.pkey = paramiko.Ed25519Key(file_obj=io.StringIO(self._openssh.decode("ascii")))
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        self.public_line = f"{public.decode('ascii')} {EPHEMERAL_COMMENT}"

    @classmethod
    def generate(cls) -> EphemeralKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.pkey)

    def write_private(self, path: str | Path) -> Path:
        """Write the private key in OpenSSH format, readable by its owner only (``ssh`` refuses a
        private key others can read), for an ``ssh -i`` command line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # the mode of os.open applies to new files only
            os.write(descriptor, self._openssh)
        finally:
            os.close(descriptor)
        return path
