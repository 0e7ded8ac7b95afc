"""GitHub's REST API, the endpoints ``dfbench github run`` calls, on loopback.

``GitHubStandin(repository, token=...)`` answers as api.github.com answers (status codes and the
fields dfbench reads, per https://docs.github.com/rest):

- ``GET /repos/{repo}/collaborators/{login}/permission``: ``{"permission", "role_name", "user"}``
  from ``permissions`` (login → admin/maintain/write/triage/read); a login it does not know is 404;
- ``POST /repos/{repo}/issues/comments/{id}/reactions``: 201, kept in ``reactions``;
- ``POST /repos/{repo}/issues/{n}/comments``: 201, kept in ``comments`` as (number, body);
- ``GET /repos/{repo}/pulls/{n}`` from ``pulls`` (``pull(n, head_sha=…, base_ref=…)``), else 404;
- ``GET /repos/{repo}/commits/{ref}`` from ``refs`` (a branch or tag → sha; a known sha answers
  itself), else 422 as GitHub answers an unknown ref.

Every request is recorded in ``requests`` (method, path, headers, JSON body), the refused ones
too. A request without ``Authorization: Bearer <token>`` is 401, one without the
``X-GitHub-Api-Version`` header 400, one for another repository 404, one whose Host is not this
server's 421. ``limited(answers)`` queues answers given before anything else (a rate limit:
status, headers, body), each used once.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None

    @property
    def route(self) -> str:
        """The path with its repository replaced by {repo}: what a test compares."""
        return re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{repo}", self.path)


@dataclass
class _State:
    permissions: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    comments: list[tuple[int, str]] = field(default_factory=list)
    reactions: list[tuple[int, str]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    canned: list[tuple[int, dict[str, str], str]] = field(default_factory=list)


class GitHubStandin:
    """A context manager: leaving it stops the server."""

    def __init__(self, repository: str = "octo-org/datafusion-distributed", *, token: str = "ghs_standin") -> None:
        self.repository = repository
        self.token = token
        self.state = _State()
        self._lock = threading.Lock()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    # What a test sets up and reads.

    @property
    def requests(self) -> list[Request]:
        return self.state.requests

    @property
    def comments(self) -> list[tuple[int, str]]:
        return self.state.comments

    @property
    def reactions(self) -> list[tuple[int, str]]:
        return self.state.reactions

    @property
    def permissions(self) -> dict[str, str]:
        return self.state.permissions

    def pull(self, number: int, *, head_sha: str, base_ref: str = "main", base_sha: str,
             head_ref: str = "feature") -> None:
        self.state.pulls[number] = {"number": number, "head": {"sha": head_sha, "ref": head_ref},
                                    "base": {"sha": base_sha, "ref": base_ref}}
        self.state.refs.setdefault(base_ref, base_sha)

    def limited(self, *answers: tuple[int, dict[str, str], str]) -> None:
        self.state.canned.extend(answers)

    def environment(self) -> dict[str, str]:
        """What GitHub Actions sets that dfbench reads, pointing here."""
        return {"GITHUB_API_URL": self.url, "GITHUB_TOKEN": self.token, "GITHUB_REPOSITORY": self.repository,
                "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "4242"}

    # The server.

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {key.lower(): value for key, value in handler.headers.items()}
        with self._lock:
            self.state.requests.append(Request(method, handler.path, headers, body))
            status, answer_headers, answer = self._answer(method, handler.path, headers, body)
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        handler.send_response(status)
        for key, value in answer_headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, headers: dict[str, str],
                body: Any) -> tuple[int, dict[str, str], Any]:
        if headers.get("host") != self.url.removeprefix("http://"):
            return 421, {}, {"message": "Misdirected Request"}
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials"}
        if not headers.get("x-github-api-version"):
            return 400, {}, {"message": "X-GitHub-Api-Version header missing"}
        if self.state.canned:
            return self.state.canned.pop(0)
        prefix = f"/repos/{self.repository}/"
        if not path.startswith(prefix):
            return 404, {}, {"message": "Not Found"}
        rest = path[len(prefix):]
        state = self.state
        if method == "GET" and (match := re.fullmatch(r"collaborators/([^/]+)/permission", rest)):
            role = state.permissions.get(match[1])
            if role is None:
                return 404, {}, {"message": "Not Found"}
            folded = {"maintain": "write", "triage": "read"}.get(role, role)
            return 200, {}, {"permission": folded, "role_name": role, "user": {"login": match[1]}}
        if method == "POST" and (match := re.fullmatch(r"issues/comments/(\d+)/reactions", rest)):
            content = (body or {}).get("content")
            if content not in ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"):
                return 422, {}, {"message": "Validation Failed"}
            state.reactions.append((int(match[1]), content))
            return 201, {}, {"id": len(state.reactions), "content": content}
        if method == "POST" and (match := re.fullmatch(r"issues/(\d+)/comments", rest)):
            text = (body or {}).get("body")
            if not isinstance(text, str) or not text or len(text) > 65536:
                return 422, {}, {"message": "Validation Failed"}
            state.comments.append((int(match[1]), text))
            number = len(state.comments)
            return 201, {}, {"id": 1000 + number, "body": text,
                             "html_url": f"https://github.com/{self.repository}/pull/{match[1]}#issuecomment-{number}"}
        if method == "GET" and (match := re.fullmatch(r"pulls/(\d+)", rest)):
            pull = state.pulls.get(int(match[1]))
            return (200, {}, pull) if pull else (404, {}, {"message": "Not Found"})
        if method == "GET" and (match := re.fullmatch(r"commits/([^/]+)", rest)):
            from urllib.parse import unquote

            ref = unquote(match[1])
            sha = state.refs.get(ref) or (ref if ref in state.refs.values() else None)
            if sha is None:
                return 422, {}, {"message": f"No commit found for SHA: {ref}"}
            return 200, {}, {"sha": sha}
        return 404, {}, {"message": "Not Found"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> GitHubStandin:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
