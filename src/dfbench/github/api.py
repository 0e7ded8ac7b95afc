"""dfbench's GitHub REST client: the few calls ``dfbench github run`` makes, over urllib.

It reads what GitHub Actions sets in a job's environment (GITHUB_API_URL, GITHUB_TOKEN,
GITHUB_REPOSITORY), sends the token as ``Authorization: Bearer`` with the API version header,
waits at most ``timeout`` seconds for an answer, follows no redirect (the token goes to the API
host and nowhere else), and waits out rate limits as GitHub documents them
(https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit):
a 403 or 429 with ``retry-after`` waits that many seconds; with ``x-ratelimit-remaining: 0`` until
``x-ratelimit-reset``; a secondary limit without either a minute, doubling at each retry. Every
wait logs a progress line and all waits of a call together are bounded (``max_wait_s``): past it
the call fails with a GitHubError saying so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dfbench import __version__
from dfbench.errors import ConfigError, GitHubError
from dfbench.waiting import time_scale

log = logging.getLogger("dfbench")

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}\Z")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?\Z")
SECONDARY_FIRST_WAIT_S = 60.0
MAX_WAIT_S = 600.0
# A connection refused or reset, or a 5xx: tried again this many times, 1 s then doubling.
TRANSIENT_ATTEMPTS = 3


def checked_repository(text: str) -> str:
    if not _REPOSITORY.match(text) or text.endswith((".", "/..")):
        raise ConfigError(f"{text!r} is not a GitHub repository: give OWNER/NAME, e.g. apache/datafusion.")
    return text


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    base_sha: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


class GitHub:
    """The REST calls of one repository. ``sleep`` is time.sleep (a test may count the waits)."""

    def __init__(self, *, api_url: str, token: str, repository: str, timeout: float = 30.0,
                 max_wait_s: float = MAX_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urllib.parse.urlsplit(api_url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ConfigError(f"GITHUB_API_URL {api_url!r} must be an https:// URL (http only to this machine).")
        if not token:
            raise ConfigError("GITHUB_TOKEN is empty: pass the workflow's token as "
                              "`env: GITHUB_TOKEN: ${{ github.token }}`.")
        self.api_url = api_url.rstrip("/")
        self.repository = checked_repository(repository)
        self._token = token
        self.timeout = timeout
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **options: Any) -> GitHub:
        env = os.environ if environ is None else environ
        repository = env.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise ConfigError("GITHUB_REPOSITORY is not set: run this in a GitHub Actions job "
                              "(or set it to OWNER/NAME).")
        return cls(api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL, token=env.get("GITHUB_TOKEN", ""),
                   repository=repository, **options)

    # The calls.

    def permission(self, login: str) -> str:
        """The user's permission on the repository: admin, maintain, write, triage, read or none
        (``role_name`` names maintain and triage, which ``permission`` folds into write and read)."""
        if not _LOGIN.match(login):
            return "none"
        try:
            answer = self.request("GET", f"/repos/{self.repository}/collaborators/{login}/permission")
        except GitHubError as error:
            if error.status == 404:  # no such user, or not a collaborator at all
                return "none"
            raise
        role = str(answer.get("role_name") or "")
        return role if role in WRITE_PERMISSIONS else str(answer.get("permission") or "none")

    def can_write(self, login: str) -> bool:
        return self.permission(login) in WRITE_PERMISSIONS

    def react(self, comment_id: int, content: str = "eyes") -> None:
        self.request("POST", f"/repos/{self.repository}/issues/comments/{int(comment_id)}/reactions",
                     {"content": content})

    def comment(self, number: int, body: str) -> str:
        """Post ``body`` on issue or pull request ``number``; returns the comment's URL."""
        answer = self.request("POST", f"/repos/{self.repository}/issues/{int(number)}/comments", {"body": body})
        return str(answer.get("html_url", ""))

    def pull_request(self, number: int) -> PullRequest:
        answer = self.request("GET", f"/repos/{self.repository}/pulls/{int(number)}")
        return PullRequest(number=int(number), head_sha=answer["head"]["sha"], head_ref=answer["head"]["ref"],
                           base_ref=answer["base"]["ref"], base_sha=answer["base"]["sha"])

    def commit_sha(self, ref: str) -> str | None:
        """The commit a branch, tag or sha names, or None when the repository has no such ref."""
        try:
            answer = self.request("GET", f"/repos/{self.repository}/commits/{urllib.parse.quote(ref, safe='')}")
        except GitHubError as error:
            if error.status in (404, 422):
                return None
            raise
        return str(answer["sha"])

    # The transport.

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        waited = 0.0
        secondary = transient = 0
        while True:
            try:
                return self._send(method, path, body)
            except urllib.error.HTTPError as error:
                status, text = error.code, _read(error)
                headers = error.headers
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                transient += 1
                if transient >= TRANSIENT_ATTEMPTS:
                    raise GitHubError(method, path, 0, f"no answer from {self.api_url}: {reason}") from None
                waited += self._wait(2.0 ** (transient - 1), f"{method} {path}: {reason}", waited, method, path)
                continue
            wait, why = _rate_limit_wait(status, headers, text, secondary)
            if wait is None and status >= 500 and transient + 1 < TRANSIENT_ATTEMPTS:
                transient += 1
                wait, why = 2.0 ** (transient - 1), f"HTTP {status}"
            if wait is None:
                raise GitHubError(method, path, status, _message(text))
            if why.startswith("secondary"):
                secondary += 1
            waited += self._wait(wait, why, waited, method, path)

    def _wait(self, seconds: float, why: str, waited: float, method: str, path: str) -> float:
        if waited + seconds > self.max_wait_s:
            raise GitHubError(method, path, 0, f"still limited after {waited:.0f} s of waiting ({why}); the next "
                              f"wait ({seconds:.0f} s) would pass the {self.max_wait_s:.0f} s bound. Try again later.")
        log.info("waiting for GitHub: %s: %.0f s (%s)", f"{method} {path}", seconds, why, extra={"wait": True})
        self._sleep(seconds * time_scale())
        return seconds

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method, headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"dfbench/{__version__}",
            **({"Content-Type": "application/json"} if data is not None else {}),
        })
        with self._opener.open(request, timeout=self.timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}


def _read(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))[:500]
    except (ValueError, AttributeError):
        return text[:500]


def _rate_limit_wait(status: int, headers: Any, text: str, secondary: int) -> tuple[float | None, str]:
    """How long GitHub asks to wait before this call is tried again, or None when the answer is no
    rate limit (a real refusal). ``secondary``: the secondary-limit answers seen so far."""
    if status not in (403, 429):
        return None, ""
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdecimal():
        return float(retry_after), f"retry-after {retry_after.strip()} s"
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdecimal():
            return max(1.0, int(reset) - time.time() + 1), f"primary rate limit, resets at {reset}"
        return SECONDARY_FIRST_WAIT_S, "primary rate limit"
    if "secondary rate limit" in text.lower() or status == 429:
        return SECONDARY_FIRST_WAIT_S * 2 ** secondary, "secondary rate limit"
    return None, ""
