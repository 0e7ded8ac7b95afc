"""One TCP connection forwarded over an SSH channel: the two pump threads and the order in which
the channel's messages may leave (see :class:`Forward`), plus the socket the session reads
through (:class:`PromptAckSocket`)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import paramiko
from paramiko.common import cMSG_CHANNEL_DATA

_CHUNK = 64 * 1024
# How often a pump waiting on a channel looks whether the connection was given up.
_POLL_S = 0.5


class Forward:
    """One forwarded TCP connection: a local client socket and its direct-tcpip channel, pumped
    by two blocking threads, client → channel (upstream) and channel → client (downstream).

    The channel ends as RFC 4254 §5.3 says and in the one order OpenSSH survives. sshd frees a
    channel as soon as it has both sent and received CHANNEL_CLOSE; a later message naming it
    makes sshd drop the whole session ("ieof packet referred to nonexistent channel"), or, once
    sshd has reused the number, lands on another connection's channel. paramiko builds each
    message under the channel's lock but sends it after releasing that lock, so two threads'
    messages can leave in the opposite order to the one they were built in. Hence:

    - only the upstream pump sends data and EOF, each checked against the channel's state and
      sent in one step (``_send_ordered``), so no CLOSE built after the check leaves before it;
    - CLOSE is sent by whichever pump finishes last, after the other made its last channel call,
      so nothing of ours follows it (a CLOSE sent by one pump used to overtake the EOF the other
      had just built, whenever a client left without reading its whole answer). When the server
      closed first, paramiko has answered its CLOSE already (``Channel._handle_close``) and
      ``close()`` sends nothing;
    - a pump that fails never closes the channel itself: it marks the forward aborted and shuts
      the client socket down, which wakes the other pump (at once when it waits on the client
      socket, within ``_POLL_S`` when it waits on the channel), and the last one out closes.

    paramiko's own window adjustments, sent by ``Channel.recv`` in the downstream pump, are built
    and sent the paramiko way; they stop at the server's EOF, which sshd sends before any CLOSE of
    its own, so one could only pass such a CLOSE if the server's EOF and CLOSE both arrived while
    ``recv`` was between the two steps.
    """

    def __init__(self, client: socket.socket, channel: paramiko.Channel, done: Callable[[Forward], None]) -> None:
        self.client = client
        self.channel = channel
        self._done = done
        self._running = 2
        self._lock = threading.Lock()
        self._aborted = False

    def start(self, number: int) -> None:
        # Channel reads time out so that the downstream pump sees an abort.
        self.channel.settimeout(_POLL_S)
        threading.Thread(target=self._upstream, name=f"ssh-forward-{number}-up", daemon=True).start()
        threading.Thread(target=self._downstream, name=f"ssh-forward-{number}-down", daemon=True).start()

    def abort(self) -> None:
        """Give up on this connection: both pumps stop at their next step; the last one closes."""
        self._aborted = True
        try:
            self.client.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked on the client socket
        except OSError:
            pass  # already shut down, or reset by the client

    def _upstream(self) -> None:
        """Client socket → channel; the client's EOF becomes the channel's EOF (a half-close: the
        answer may still be on its way back)."""
        channel = self.channel
        try:
            while not self._aborted and (data := self.client.recv(_CHUNK)):
                self._send_data(data)
            if not self._aborted:
                # Channel._send_eof sends EOF once (closing the channel counts as having sent it).
                self._send_ordered(lambda: None if channel.closed else channel._send_eof())
        except (OSError, EOFError, paramiko.SSHException):
            self.abort()  # the client reset, or the channel or session is gone
        finally:
            self._finished()

    def _send_data(self, data: bytes) -> None:
        """What ``Channel.sendall`` does, each packet sent with ``_send_ordered``."""
        channel = self.channel
        while data:
            with channel.lock:
                # paramiko's condition on the channel's lock, notified by window adjustments and
                # by the channel's close.
                while channel.out_window_size == 0 and not channel.closed and not self._aborted:
                    channel.out_buffer_cv.wait(_POLL_S)
                # Channel._wait_for_send_window's limits: the window and a packet's payload. This
                # pump is the channel's only sender, so the window can only have grown by the time
                # the packet is built.
                size = min(len(data), channel.out_window_size, channel.out_max_packet_size - 64)
            if self._aborted:
                return

            def build(chunk: bytes = data[:size]) -> paramiko.Message | None:
                if channel.closed:
                    return None
                channel.out_window_size -= len(chunk)
                message = paramiko.Message()
                message.add_byte(cMSG_CHANNEL_DATA)
                message.add_int(channel.remote_chanid)
                message.add_string(chunk)
                return message

            if self._send_ordered(build) is None:
                raise OSError("the channel is closed")
            data = data[size:]

    def _send_ordered(self, build: Callable[[], paramiko.Message | None]) -> paramiko.Message | None:
        """Build a message under the channel's lock and send it before any message paramiko
        builds afterwards; None (nothing sent) when ``build`` finds nothing to send.

        paramiko sends under the session's ``clear_to_send_lock`` (``Transport._send_user_message``)
        what it built earlier under the channel's lock, and its own thread answers the server's
        CLOSE that way (``Channel._handle_close``). sshd closes on its own once writing to the
        worker failed (the worker reset the connection with our data in flight), so that answer
        could leave before a data packet built just earlier. Here the check, the build and the
        send all happen under ``clear_to_send_lock``, taken first (paramiko never takes it while
        holding a channel's lock, so the two cannot deadlock): a CLOSE built after the check
        leaves after this message. Like ``_send_user_message``, it waits out a key exchange
        (which clears ``clear_to_send``) without holding the lock."""
        transport = self.channel.transport
        deadline = time.monotonic() + transport.clear_to_send_timeout
        while True:
            transport.clear_to_send.wait(0.1)
            if not transport.active:
                raise EOFError("the SSH session is closed")
            with transport.clear_to_send_lock:
                if transport.clear_to_send.is_set():
                    with self.channel.lock:
                        message = build()
                    if message is not None:
                        transport._send_message(message)
                    return message
            if time.monotonic() > deadline:
                raise paramiko.SSHException("Key-exchange timed out waiting for key negotiation")

    def _downstream(self) -> None:
        """Channel → client socket; the server's EOF becomes a FIN to the client (SHUT_WR)."""
        try:
            while True:
                try:
                    data = self.channel.recv(_CHUNK)
                except TimeoutError:
                    if self._aborted:
                        return
                    continue
                if not data:
                    break
                self.client.sendall(data)
            self.client.shutdown(socket.SHUT_WR)
            if self.channel.closed:
                # The server closed the channel (after our EOF, or because the worker is gone): what
                # the client still sends has nowhere to go.
                self.abort()
        except OSError:
            self.abort()  # the client went away without reading everything
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running:
                return
        try:
            self.channel.close()  # EOF (unless sent) and CLOSE: the last messages for this channel
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the session is gone already (closed, or dropped): so is the channel
        self.client.close()
        self._done(self)


def reset(client: socket.socket) -> None:
    """Close with an RST instead of a FIN, so the HTTP client sees a connection reset (nothing to
    read) rather than an empty answer."""
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    client.close()


class PromptAckSocket:
    """The SSH connection's socket, acknowledging every segment at once (Linux TCP_QUICKACK).

    sshd does not disable Nagle's algorithm on a connection that only forwards ports, so a small
    packet that follows another (the body after the headers; the channel EOF after the data)
    waits until the previous one is acknowledged, and the receiver's delayed ACK holds that for
    40 ms on Linux: without this, every forwarded HTTP exchange waits 40 ms for nothing. The
    flag does not stick (the kernel drops back to delayed ACKs), so it is set before each read.
    paramiko reads through ``recv`` only; everything else goes to the socket itself."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only

    def recv(self, size: int) -> bytes:
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:
                self._quickack = None
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)
