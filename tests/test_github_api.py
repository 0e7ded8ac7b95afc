"""dfbench's GitHub REST client against the loopback stand-in: its headers, its refusals, and
GitHub's rate-limit answers waited out as GitHub documents them, within a bound."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dfbench.errors import ConfigError, GitHubError
from dfbench.github.api import GitHub
from dfbench_testing.github import GitHubStandin

REPO = "octo-org/datafusion-distributed"


@pytest.fixture
def standin() -> Iterator[GitHubStandin]:
    with GitHubStandin(REPO) as server:
        server.permissions["writer"] = "write"
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(standin: GitHubStandin, sleeps: Sleeps, **options: Any) -> GitHub:
    return GitHub.from_environment(standin.environment(), sleep=sleeps, **options)


def test_every_request_carries_the_token_the_version_and_json(standin: GitHubStandin) -> None:
    github = client(standin, Sleeps())
    url = github.comment(7, "hello")
    assert url.endswith("#issuecomment-1")
    [request] = standin.requests
    assert request.headers["authorization"] == f"Bearer {standin.token}"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.body == {"body": "hello"}


def test_a_wrong_token_is_an_error_naming_the_call(standin: GitHubStandin) -> None:
    github = GitHub(api_url=standin.url, token="wrong", repository=REPO, sleep=Sleeps())
    with pytest.raises(GitHubError, match=r"GET /repos/octo-org/datafusion-distributed/pulls/7 failed: HTTP 401: "
                       "Bad credentials"):
        github.pull_request(7)


def test_permissions_fold_as_github_answers_them(standin: GitHubStandin) -> None:
    standin.permissions.update({"keeper": "maintain", "triager": "triage", "admin": "admin"})
    github = client(standin, Sleeps())
    assert [github.can_write(login) for login in ("writer", "keeper", "admin", "triager", "nobody", "../x")] == \
        [True, True, True, False, False, False]
    # "../x" is no login: never sent.
    assert [r.path.split("/")[5] for r in standin.requests] == ["writer", "keeper", "admin", "triager", "nobody"]


@pytest.mark.parametrize(("status", "headers", "body", "wait"), [
    (403, {"retry-after": "7"}, '{"message": "You have exceeded a secondary rate limit"}', 7.0),
    (429, {"retry-after": "3"}, "{}", 3.0),
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "RESET"}, '{"message": "API rate limit exceeded"}', 41.0),
    (403, {}, '{"message": "You have exceeded a secondary rate limit."}', 60.0),
])
def test_a_rate_limit_is_waited_out_then_the_call_goes_through(standin: GitHubStandin, status: int,
                                                               headers: dict[str, str], body: str,
                                                               wait: float) -> None:
    reset = int(time.time()) + 40
    headers = {k: v.replace("RESET", str(reset)) for k, v in headers.items()}
    sleeps = Sleeps()
    standin.limited((status, headers, body))
    standin.pull(7, head_sha="a" * 40, base_sha="b" * 40)
    pull = client(standin, sleeps).pull_request(7)
    assert pull.head_sha == "a" * 40
    assert len(standin.requests) == 2  # refused once, then answered
    assert len(sleeps) == 1 and sleeps[0] == pytest.approx(wait * 0.001, abs=0.002)  # scaled as every wait


def test_secondary_limits_back_off_doubling_until_the_bound(standin: GitHubStandin) -> None:
    secondary = (403, {}, '{"message": "You have exceeded a secondary rate limit"}')
    standin.limited(*[secondary] * 5)
    sleeps = Sleeps()
    with pytest.raises(GitHubError, match=r"still limited after 420 s of waiting .* 600 s bound"):
        client(standin, sleeps).comment(7, "x")
    assert [s / 0.001 for s in sleeps] == pytest.approx([60, 120, 240])
    assert standin.comments == []


def test_a_plain_refusal_is_not_taken_for_a_rate_limit(standin: GitHubStandin) -> None:
    standin.limited((403, {"x-ratelimit-remaining": "4999"}, '{"message": "Resource not accessible by integration"}'))
    sleeps = Sleeps()
    with pytest.raises(GitHubError, match="HTTP 403: Resource not accessible by integration"):
        client(standin, sleeps).react(99)
    assert sleeps == [] and len(standin.requests) == 1


def test_a_server_error_is_tried_again_a_bounded_number_of_times(standin: GitHubStandin) -> None:
    standin.limited(*[(502, {}, "{}")] * 3)
    sleeps = Sleeps()
    with pytest.raises(GitHubError, match="HTTP 502"):
        client(standin, sleeps).comment(7, "x")
    assert len(standin.requests) == 3 and len(sleeps) == 2


@pytest.fixture(autouse=True)
def _time_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.001")


def test_no_redirect_is_followed_with_the_token() -> None:
    seen: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(301)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        github = GitHub(api_url=f"http://127.0.0.1:{server.server_address[1]}", token="t", repository=REPO)
        with pytest.raises(GitHubError, match="HTTP 301"):
            github.pull_request(7)
        assert seen == [f"/repos/{REPO}/pulls/7"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("environment", "message"), [
    ({"GITHUB_API_URL": "http://api.example.com", "GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": REPO}, "https://"),
    ({"GITHUB_TOKEN": "", "GITHUB_REPOSITORY": REPO}, "GITHUB_TOKEN is empty"),
    ({"GITHUB_TOKEN": "t"}, "GITHUB_REPOSITORY is not set"),
    ({"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "../etc"}, "is not a GitHub repository"),
])
def test_the_environment_is_checked(environment: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GitHub.from_environment(environment)
