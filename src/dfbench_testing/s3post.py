"""S3's check of a browser-based POST upload against the policy signed for it, which moto does not
make (it stores whatever is posted). AWS refuses the upload unless every condition of the policy
holds and every form field but a few is named by a condition
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html): tests apply
this to the fields an instance really posted."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime

# Fields no condition needs to name (the same page): the signature, the file, the policy itself,
# anything prefixed x-ignore-; and the SigV2 names of the first two.
_EXEMPT = {"x-amz-signature", "file", "policy", "signature", "awsaccesskeyid"}


def post_policy_problems(fields: Mapping[str, str], content_length: int, *, bucket: str,
                         now: datetime | None = None) -> list[str]:
    """Why S3 would refuse a POST of ``fields`` (the form's fields, ``policy`` among them) with a
    file of ``content_length`` bytes to ``bucket``; empty when it would accept it."""
    policy = json.loads(base64.b64decode(fields["policy"]))
    problems = []
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if expires <= (now or datetime.now(UTC)):
        problems.append(f"the policy expired at {policy['expiration']}")
    # Field names match without regard to case; values exactly.
    values = {name.lower(): value for name, value in fields.items()} | {"bucket": bucket}
    named = set()
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            [(name, expected)] = condition.items()
            operator = "eq"
        else:
            operator, name, expected = condition
        if operator == "content-length-range":
            low, high = int(name), int(expected)
            if not low <= content_length <= high:
                problems.append(f"{content_length} bytes is outside content-length-range {low}..{high}")
            continue
        name = name.removeprefix("$").lower()
        named.add(name)
        got = values.get(name)
        if operator == "eq" and got != expected:
            problems.append(f"{name} is {got!r}, the policy requires {expected!r}")
        elif operator == "starts-with" and (got is None or not got.startswith(expected)):
            problems.append(f"{name} is {got!r}, the policy requires it to start with {expected!r}")
        elif operator not in ("eq", "starts-with"):
            problems.append(f"unknown condition {operator!r}")
    for name in values:
        if name not in named and name not in _EXEMPT and not name.startswith("x-ignore-"):
            problems.append(f"the form field {name} is not named by any condition of the policy")
    return problems
