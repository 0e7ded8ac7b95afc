"""The ssm transport: Session Manager port forwarding (``AWS-StartPortForwardingSession``) to the
worker's port, run by the Session Manager plugin the way the AWS CLI runs it, so no second
terminal and no open inbound port are needed.

How the plugin is invoked, from awscli's ``customizations/sessionmanager.py``
(``StartSessionCaller.invoke``) and the plugin's ``ValidateInputAndStartSession``
(aws/session-manager-plugin, ``src/sessionmanagerplugin/session/session.go``):

    session-manager-plugin <StartSession response JSON> <region> StartSession <profile or "">
                           <StartSession request parameters JSON> <ssm endpoint url>

The response JSON holds SessionId, TokenValue and StreamUrl. Plugins newer than 1.2.497.0 also
accept the literal name ``AWS_SSM_START_SESSION_RESPONSE`` as the first argument and read the
JSON from that environment variable (then unset it); newer CLIs do that when ``--version`` says
the plugin is new enough. See ``_plugin_argv`` for which form dfbench uses.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from types import TracebackType
from typing import Any, Self

from dfbench.errors import TransportError, aws_errors
from dfbench.transport.base import local_listener

log = logging.getLogger("dfbench")

PLUGIN_NAME = "session-manager-plugin"
INSTALL_URL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
               "session-manager-working-with-install-plugin.html")
PLUGIN_INSTALL_HINT = (
    "The AWS Session Manager plugin (session-manager-plugin) is not installed, and `--via ssm` needs it.\n"
    "  Install it (version 1.2.764.0 or later) as described at " + INSTALL_URL + "\n"
    "  - Debian/Ubuntu: curl -o session-manager-plugin.deb "
    "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/ubuntu_64bit/session-manager-plugin.deb"
    " && sudo dpkg -i session-manager-plugin.deb   (ARM: ubuntu_arm64)\n"
    "  - Amazon Linux/RHEL/Fedora: sudo dnf install -y "
    "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/linux_64bit/session-manager-plugin.rpm"
    "   (ARM: linux_arm64)\n"
    "  - macOS: brew install --cask session-manager-plugin, or the installer "
    "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/mac/session-manager-plugin.pkg "
    "(Apple silicon: mac_arm64)\n"
    "  Or use a transport that needs no plugin: `--via ssh` (EC2 Instance Connect, needs an SSH ingress "
    "CIDR in the spec) or `--via relay` (each request runs as an SSM command; slower)."
)
DOCUMENT = "AWS-StartPortForwardingSession"
# The environment variable newer plugins read the StartSession response from, and the last plugin
# version that does not (awscli: StartSessionCaller.LAST_PLUGIN_VERSION_WITHOUT_ENV_VAR).
RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
_LAST_VERSION_WITHOUT_ENV = (1, 2, 497, 0)
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
_VERSION_TIMEOUT_S = 10.0
# The plugin prints one of these once its local listener is up: "Waiting for connections..."
# (multiplexed port sessions), "Port N opened for sessionId S." (both kinds of port session).
_READY = re.compile(r"Waiting for connections|Port \d+ opened for sessionId")
STOP_TIMEOUT_S = 3.0
_OUTPUT_LINES = 40


def find_plugin() -> str | None:
    """The Session Manager plugin on PATH, or None."""
    return shutil.which(PLUGIN_NAME)


def _require_plugin(plugin: str | None) -> str:
    """The plugin to run (the one given, else the one on PATH); TransportError with the install
    hint when there is none. Local only: runs before any AWS call."""
    if plugin is None:
        found = find_plugin()
    elif os.sep in plugin:
        found = plugin if os.path.isfile(plugin) and os.access(plugin, os.X_OK) else None
    else:
        found = shutil.which(plugin)
    if not found:
        where = f" (looked for {plugin})" if plugin else ""
        raise TransportError("ssm", PLUGIN_INSTALL_HINT.replace("is not installed", f"is not installed{where}", 1))
    return found


def _plugin_version(plugin: str) -> tuple[int, ...] | None:
    try:
        done = subprocess.run([plugin, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("%s --version failed: %s", plugin, error)
        return None
    text = re.sub(r"\s+", "", done.stdout)
    if done.returncode != 0 or not _VERSION.match(text):
        return None
    return tuple(int(part) for part in text.split("."))


def _newer(version: tuple[int, ...], than: tuple[int, ...]) -> bool:
    width = max(len(version), len(than))
    return version + (0,) * (width - len(version)) > than + (0,) * (width - len(than))


def reads_response_from_env(plugin: str) -> bool:
    """Whether the plugin takes the StartSession response through ``AWS_SSM_START_SESSION_RESPONSE``:
    its ``--version`` is newer than 1.2.497.0 (the AWS CLI's test)."""
    version = _plugin_version(plugin)
    return version is not None and _newer(version, _LAST_VERSION_WITHOUT_ENV)


def _plugin_argv(plugin: str, response: dict[str, Any], request: dict[str, Any], *, region: str,
                 profile: str | None, endpoint_url: str, via_env: bool) -> tuple[list[str], dict[str, str]]:
    """The plugin's command line and the environment variables to add, as the AWS CLI builds them.

    Which form: the one the current CLI picks, by the plugin's ``--version`` (``via_env``). A
    plugin newer than 1.2.497.0 gets the response through ``AWS_SSM_START_SESSION_RESPONSE``
    (argv[1] is that name), because argv is readable by every local user (``ps``,
    /proc/PID/cmdline) while the environment is readable only by the same user, and the response
    carries the session token. Older plugins, or a ``--version`` that does not answer with a
    version, get the JSON itself as argv[1]: every plugin version understands that form, whereas
    an old plugin given the variable name would parse the name as JSON and fail. So the
    invocation works with any plugin and keeps the token out of the process list whenever the
    plugin allows it."""
    session = json.dumps({key: response[key] for key in ("SessionId", "TokenValue", "StreamUrl")})
    extra = {RESPONSE_ENV: session} if via_env else {}
    first = RESPONSE_ENV if via_env else session
    argv = [plugin, first, region, "StartSession", profile or "", json.dumps(request), endpoint_url]
    return argv, extra


def _start_session(ssm: Any, plugin: str, request: dict[str, Any], *, region: str,
                   profile: str | None) -> tuple[list[str], dict[str, str], str]:
    """StartSession with ``request``, and the plugin invocation for the session: argv, the
    environment variables to add, and the session id (which the caller must terminate). The
    plugin's version is asked first, so a plugin that hangs leaves no session behind."""
    via_env = reads_response_from_env(plugin)
    with aws_errors(profile):
        response = ssm.start_session(**request)
    session_id = str(response["SessionId"])
    try:
        argv, extra = _plugin_argv(plugin, response, request, region=region, profile=profile,
                                   endpoint_url=str(ssm.meta.endpoint_url), via_env=via_env)
    except BaseException:
        terminate_session(ssm, session_id, profile)
        raise
    return argv, extra, session_id


def terminate_session(ssm: Any, session_id: str, profile: str | None = None) -> None:
    """TerminateSession, best effort: a session nobody uses ends by itself after its idle timeout."""
    try:
        with aws_errors(profile):
            ssm.terminate_session(SessionId=session_id)
    except Exception as error:
        log.warning("could not terminate SSM session %s: %s", session_id, error)


def shell_command(ssm: Any, *, instance_id: str, region: str, profile: str | None = None,
                  plugin: str | None = None) -> tuple[list[str], dict[str, str], str]:
    """Start an interactive Session Manager session on the instance (StartSession with only
    Target) and return the plugin's argv, the environment variables to add to the caller's, and
    the session id. The caller runs argv with the terminal attached, then terminates the session
    (``ssm.terminate_session(SessionId=...)``)."""
    path = _require_plugin(plugin)
    return _start_session(ssm, path, {"Target": instance_id}, region=region, profile=profile)


def _free_port(port: int = 0) -> int:
    """``port`` when it is free now (0: any free port), else the TransportError saying so."""
    with local_listener(SsmTransport.kind, port) as probe:
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class SsmTransport:
    """``http://127.0.0.1:<free port>`` forwarded to the instance's ``remote_port`` by a Session
    Manager port-forwarding session that this object starts and ends."""

    kind = "ssm"
    stop_timeout_s = STOP_TIMEOUT_S  # SIGTERM, then SIGKILL after this long

    def __init__(self, *, ssm: Any, instance_id: str, region: str, profile: str | None = None,
                 remote_port: int = 9000, plugin: str | None = None, start_timeout_s: float = 30.0,
                 local_port: int = 0) -> None:
        self.ssm = ssm
        self.instance_id = instance_id
        self.region = region
        self.profile = profile
        self.remote_port = remote_port
        self.plugin = plugin
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.local_port = local_port  # 0: a free one, chosen on enter
        self.session_id: str | None = None
        self.pid: int | None = None
        self.description = (f"ssm: Session Manager port forwarding from 127.0.0.1 to {instance_id}:{remote_port} "
                            f"({DOCUMENT})")
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        if self._process is not None:
            return self
        plugin = _require_plugin(self.plugin)
        try:
            self._open(plugin)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _open(self, plugin: str) -> None:
        self._ready.clear()
        self._output.clear()
        port = _free_port(self.local_port)  # free now; the plugin binds it a moment later
        request = {"Target": self.instance_id, "DocumentName": DOCUMENT,
                   "Parameters": {"portNumber": [str(self.remote_port)], "localPortNumber": [str(port)]}}
        argv, extra, self.session_id = _start_session(self.ssm, plugin, request, region=self.region,
                                                      profile=self.profile)
        # The plugin listens on "localhost" unless told otherwise, which may be ::1 only; the URL
        # is 127.0.0.1.
        env = {**os.environ, **extra, "SSM_PLUGIN_LOCAL_HOST": "127.0.0.1"}
        # Its own session: a Ctrl-C in the terminal reaches dfbench, which then stops the plugin
        # and ends the session in order, instead of the plugin dying on its own halfway.
        self._process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True)
        self.pid = self._process.pid
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True,
                                        name=f"ssm-plugin-{self.pid}")
        self._reader.start()
        self._wait_ready(port)
        self.local_port = port
        self.url = f"http://127.0.0.1:{port}"
        log.info("SSM session %s forwards %s to %s:%d", self.session_id, self.url, self.instance_id,
                 self.remote_port)

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            if line.strip():
                self._output.append(line)
                log.debug("session-manager-plugin: %s", line)
            if _READY.search(line):
                self._ready.set()

    def _wait_ready(self, port: int) -> None:
        """Until the plugin says it listens (or, whatever it prints, the port accepts a TCP
        connection); TransportError when it exits first or ``start_timeout_s`` passes."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready.is_set():
            code = self._process.poll()
            if code is not None:
                if self._reader is not None:
                    self._reader.join(2)  # everything it printed
                raise TransportError("ssm", f"The Session Manager plugin exited (code {code}) before forwarding "
                                     f"127.0.0.1:{port} to {self.instance_id}:{self.remote_port}."
                                     + self._tail() + self._advice())
            if _accepts(port):
                return
            if time.monotonic() >= deadline:
                raise TransportError("ssm", f"The Session Manager plugin did not open 127.0.0.1:{port} within "
                                     f"{self.start_timeout_s:g}s (forwarding to {self.instance_id}:"
                                     f"{self.remote_port})." + self._tail() + self._advice())
            self._ready.wait(0.05)

    def _tail(self) -> str:
        lines = list(self._output)[-20:]
        return ("\n  Its output:\n" + "\n".join(f"    | {line}" for line in lines)) if lines else \
            "\n  It printed nothing."

    def _advice(self) -> str:
        return (f"\n  Check that {self.instance_id} is online in SSM (`dfbench status`) and that your identity "
                "may call ssm:StartSession with AWS-StartPortForwardingSession; or use `--via relay`.")

    def close(self) -> None:
        """Stop the plugin (SIGTERM, then SIGKILL after a few seconds), then end the session.
        Safe to call more than once, and after a failed start."""
        with self._lock:
            process, self._process = self._process, None
            session_id, self.session_id = self.session_id, None
            reader, self._reader = self._reader, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("session-manager-plugin (pid %d) ignored SIGTERM; killing it", process.pid)
                    process.kill()
                    process.wait()
            if reader is not None:
                reader.join(2)
            if process.stdout is not None:
                process.stdout.close()
        if session_id is not None:
            terminate_session(self.ssm, session_id, self.profile)
        self.url = ""
