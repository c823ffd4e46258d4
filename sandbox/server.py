"""`Sandbox`: the sandbox app served on an HTTP and an HTTPS listener in daemon threads.

    with Sandbox() as sb:                      # free ports, temporary store
        requests.get(f"{sb.https_url}/...", verify=sb.ca_path)

Invariants:
- Listeners bind loopback only (127.0.0.0/8, ::1 or localhost); anything else is refused, since
  the sandbox hands out tokens to anyone who asks.
- Both listeners serve the same app (and so the same state); `http_url`/`https_url` are known
  once `start()` returns and are written into `state` before the first request.
- Werkzeug's threaded server (`make_server(threaded=True)`, one thread per connection, daemon
  threads) so slow or stalled requests never block `stop()`.
- The TLS handshake runs in the connection's thread, not in the accept loop, so a client that
  connects and never speaks TLS cannot stall the listener.
- `stop()` also cuts the connections of requests still in flight (werkzeug closes every
  connection after one response anyway: no keep-alive), so nothing is answered after it returns.
- `data_dir=None`: store, keys and certificates live in a temporary directory removed at
  `stop()`; with a directory they persist (`sandbox.sqlite`, `keys/`, `tls/`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_sandbox_app
from sandbox.controls import Controls
from sandbox.keys import SigningKey
from sandbox.state import SandboxState
from sandbox.store import Store
from sandbox.tls import TLSFiles, ensure_tls


class _Handler(WSGIRequestHandler):
    """Request handler that tracks its connection (so `stop()` can cut requests in flight)."""

    log_requests = True

    def setup(self) -> None:
        super().setup()
        with _connections_lock:
            _connections.setdefault(self.server, set()).add(self.connection)

    def finish(self) -> None:
        with _connections_lock:
            _connections.get(self.server, set()).discard(self.connection)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.log_requests:
            super().log_request(code, size)


class _QuietHandler(_Handler):
    """Handler that does not log every request line (errors are still logged)."""

    log_requests = False


# Open client connections per listener. Werkzeug's shutdown() only stops accepting; a request
# in flight would otherwise be answered by a stopped sandbox (closed store).
_connections: dict[object, set[socket.socket]] = {}
_connections_lock = threading.Lock()


class _LazyHandshakeContext(ssl.SSLContext):
    """Server context whose sockets handshake on first read (in the connection's thread)."""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(sock, *args, **kwargs)


def _server_context(tls: TLSFiles) -> ssl.SSLContext:
    ctx = _LazyHandshakeContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_path, tls.key_path)
    return ctx


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the sandbox binds loopback only (127.0.0.1, ::1, localhost), not {host!r}")


class Sandbox:
    """Google and Microsoft stand-ins on loopback; see the module docstring."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        http_port: int = 0,
        https_port: int = 0,
        latency: float | Mapping[str, float] | None = None,
        *,
        log_requests: bool = False,
    ) -> None:
        _check_loopback(host)
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self.host = host
        self.http_port = http_port
        self.https_port = https_port
        self.latency = latency
        self.log_requests = log_requests
        self._state: SandboxState | None = None
        self._app: Flask | None = None
        self._tmp_dir: str | None = None
        self._tls: TLSFiles | None = None
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Create the state and bind both listeners; returns self."""
        if self._servers:
            raise RuntimeError("sandbox already started")
        if self.data_dir is None:
            self._tmp_dir = tempfile.mkdtemp(prefix="warmline-sandbox-")
            directory = self._tmp_dir
        else:
            os.makedirs(self.data_dir, exist_ok=True)
            directory = self.data_dir
        try:
            self._tls = ensure_tls(directory, self.host)
            lock = threading.RLock()
            controls = Controls()
            if isinstance(self.latency, Mapping):
                controls.configure(**dict(self.latency))
            elif self.latency is not None:
                controls.set_latency(float(self.latency))
            state = SandboxState(
                store=Store(os.path.join(directory, "sandbox.sqlite"), lock=lock),
                controls=controls,
                google_key=SigningKey.load_or_create(directory, "google"),
                microsoft_key=SigningKey.load_or_create(directory, "microsoft"),
                lock=lock,
                data_dir=self.data_dir,
                ca_path=self._tls.ca_path,
            )
            self._state = state
            self._app = create_sandbox_app(state)
            handler = _Handler if self.log_requests else _QuietHandler
            http = make_server(
                self.host, self.http_port, self._app, threaded=True, request_handler=handler
            )
            https = make_server(
                self.host,
                self.https_port,
                self._app,
                threaded=True,
                request_handler=handler,
                ssl_context=_server_context(self._tls),
            )
            self._servers = [http, https]
            state.http_url = f"http://{self._netloc(http.port)}"
            state.https_url = f"https://{self._netloc(https.port)}"
            for server, name in ((http, "http"), (https, "https")):
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"sandbox-{name}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut both listeners down, close the store, remove a temporary data dir."""
        for server in self._servers:
            server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        for server in self._servers:
            server.server_close()
            with _connections_lock:
                open_connections = _connections.pop(server, set())
            for conn in open_connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._servers = []
        self._threads = []
        if self._state is not None:
            self._state.store.close()
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ---------------------------------------------------------------------------

    @property
    def state(self) -> SandboxState:
        """The running sandbox's state (store, controls, keys, clients, config)."""
        if self._state is None:
            raise RuntimeError("sandbox not started")
        return self._state

    @property
    def app(self) -> Flask:
        """The Flask app both listeners serve (handy for `app.test_client()`)."""
        if self._app is None:
            raise RuntimeError("sandbox not started")
        return self._app

    @property
    def http_url(self) -> str:
        """`http://127.0.0.1:P`, no trailing slash."""
        return self.state.http_url

    @property
    def https_url(self) -> str:
        """`https://127.0.0.1:Q`, no trailing slash."""
        return self.state.https_url

    @property
    def ca_path(self) -> str:
        """PEM file of the CA that signed the HTTPS listener's certificate."""
        if self._tls is None:
            raise RuntimeError("sandbox not started")
        return self._tls.ca_path

    def _netloc(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{port}"
