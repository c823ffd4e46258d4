"""Helpers shared by the test packages (not fixtures: plain functions)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.settings import Settings


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for an isolated embedded setup under `data_dir`."""
    values: dict[str, object] = {"data_dir": data_dir, "port": free_port()}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def wait_for_http(
    url: str, *, timeout_s: float, status: int = 200, process: subprocess.Popen[bytes] | None = None
) -> bytes:
    """Poll `url` until it answers `status`; return the body or raise TimeoutError.

    With `process`, give up as soon as that process has exited.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == status:
                    return bytes(response.read())
                last = response.status
        except urllib.error.HTTPError as exc:
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {status} within {timeout_s}s (last: {last})")
