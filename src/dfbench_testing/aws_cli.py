"""The AWS CLI of an instance, for the commands dfbench's instance scripts run, backed by the
emulator (``AWS_ENDPOINT_URL``) through boto3:

- ``aws s3 cp [--region R] [--only-show-errors] s3://BUCKET/KEY DEST`` (``-`` for stdout);
- ``aws ssm get-parameter --name NAME [--with-decryption] --query Parameter.Value --output text``.

Failures print what AWS CLI v2 prints and exit as it does: ``fatal error: An error occurred (404)
when calling the HeadObject operation: ...`` and status 1 for ``s3 cp`` (it asks HeadObject
first), ``An error occurred (CODE) when calling the OPERATION operation: ...`` and status 254 for
an API command (https://docs.aws.amazon.com/cli/latest/topic/return-codes.html). Anything else
is refused with status 252, the CLI's "command syntax" code, so a script using a form this does
not know fails loudly instead of passing by accident.

``bin_dir(folder)`` writes an ``aws`` program into ``folder`` that runs this module with the
current Python, for a test to put first on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError


def _client(service: str, region: str | None):
    return boto3.session.Session().client(service, region_name=region or os.environ.get("AWS_REGION")
                                          or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def _options(words: list[str], flags: set[str]) -> tuple[dict[str, str | bool], list[str]]:
    """--name value pairs (flags: no value), and the positional words."""
    options: dict[str, str | bool] = {}
    positional: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--"):
            if word in flags:
                options[word] = True
            else:
                index += 1
                options[word] = words[index]
        else:
            positional.append(word)
        index += 1
    return options, positional


def _s3_cp(words: list[str]) -> int:
    options, positional = _options(words, {"--only-show-errors"})
    if len(positional) != 2 or not positional[0].startswith("s3://") or set(options) - {"--region",
                                                                                      "--only-show-errors"}:
        return _usage(["s3", "cp", *words])
    bucket, _, key = positional[0].removeprefix("s3://").partition("/")
    s3 = _client("s3", options.get("--region"))  # type: ignore[arg-type]
    try:
        s3.head_object(Bucket=bucket, Key=key)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        code = error.response["Error"].get("Code", "")
        message = f'Key "{key}" does not exist' if code in ("404", "NoSuchKey") else \
            error.response["Error"].get("Message", "")
        print(f"fatal error: An error occurred ({code}) when calling the HeadObject operation: {message}",
              file=sys.stderr)
        return 1
    if positional[1] == "-":
        sys.stdout.buffer.write(body)
    else:
        Path(positional[1]).write_bytes(body)
    return 0


def _ssm_get_parameter(words: list[str]) -> int:
    options, positional = _options(words, {"--with-decryption"})
    if positional or "--name" not in options or options.get("--query") != "Parameter.Value" \
            or options.get("--output") != "text" or set(options) - {"--name", "--with-decryption", "--query",
                                                                    "--output", "--region"}:
        return _usage(["ssm", "get-parameter", *words])
    ssm = _client("ssm", options.get("--region"))  # type: ignore[arg-type]
    try:
        parameter = ssm.get_parameter(Name=options["--name"], WithDecryption=bool(options.get("--with-decryption")))
    except ClientError as error:
        print(f"\nAn error occurred ({error.response['Error'].get('Code')}) when calling the GetParameter "
              f"operation: {error.response['Error'].get('Message', '')}", file=sys.stderr)
        return 254
    sys.stdout.write(parameter["Parameter"]["Value"] + "\n")  # --output text: the value and a newline
    return 0


def _usage(words: list[str]) -> int:
    print(f"stand-in aws: unsupported command: aws {' '.join(words)}", file=sys.stderr)
    return 252


def main(argv: list[str]) -> int:
    if argv[:2] == ["s3", "cp"]:
        return _s3_cp(argv[2:])
    if argv[:2] == ["ssm", "get-parameter"]:
        return _ssm_get_parameter(argv[2:])
    return _usage(argv)


def bin_dir(folder: Path) -> Path:
    """``folder`` with an ``aws`` program in it running this module; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    from dfbench_testing.tools import python_script_program  # here: the program itself runs without the harness

    # Run as a file, not a module of the harness: importing the harness would cost each call a second.
    python_script_program(folder / "aws", __file__)
    return folder


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
