"""The embedded setup with real processes: a worker, beat, and the `warmline up` supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import migrations
from core.settings import Settings
from server.app import create_app
from tests.support import free_port, make_settings, wait_for_http

pytestmark = pytest.mark.slow


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    env.update(
        WARMLINE_DATA_DIR=str(settings.data_dir),
        WARMLINE_PORT=str(settings.port),
        WARMLINE_WORKER_CONCURRENCY="1",
        WARMLINE_WEB_WORKERS="1",
        **extra,
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path / "data", heartbeat_interval_s=1.0)
    settings.data_dir.mkdir(parents=True)
    migrations.upgrade(settings.effective_database_url)
    return settings


def test_a_task_sent_by_the_web_process_runs_in_a_worker_process(
    settings: Settings, tmp_path: Path
) -> None:
    worker = _start(["worker"], _env(settings), tmp_path / "worker.log")
    try:
        client = create_app(settings).test_client()
        deadline = time.monotonic() + 60
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            response = client.get("/readyz?deep=1")
            body = response.get_json()
            if response.status_code == 200:
                break
            time.sleep(0.5)
        assert body.get("status") == "ready", (body, (tmp_path / "worker.log").read_text())
        answered_by = body["checks"]["worker"]["pid"]  # type: ignore[index]
        assert answered_by != os.getpid()
        # The worker is a real separate process tree: the pid is the worker or one of its children.
        assert Path(f"/proc/{answered_by}").exists()
    finally:
        assert _stop(worker) == 0


def test_beat_schedules_heartbeats_that_a_worker_records(
    settings: Settings, tmp_path: Path
) -> None:
    env = _env(settings, WARMLINE_HEARTBEAT_INTERVAL_S="1")
    worker = _start(["worker"], env, tmp_path / "worker.log")
    beat = _start(["beat"], env, tmp_path / "beat.log")
    try:
        client = create_app(settings).test_client()
        deadline = time.monotonic() + 60
        heartbeats: dict[str, str] = {}
        while time.monotonic() < deadline and "worker" not in heartbeats:
            heartbeats = client.get("/readyz").get_json()["checks"]["database"]["heartbeats"]
            time.sleep(0.5)
        assert "worker" in heartbeats, (tmp_path / "beat.log").read_text()[-2000:]
    finally:
        _stop(beat)
        _stop(worker)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_up_brings_everything_up_and_ctrl_c_stops_all_of_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    env = _env(
        settings,
        WARMLINE_SANDBOX_HTTP_PORT=str(free_port()),
        WARMLINE_SANDBOX_HTTPS_PORT=str(free_port()),
    )
    up = _start(["up"], env, tmp_path / "up.log")
    try:
        base = f"http://127.0.0.1:{settings.port}"
        wait_for_http(f"{base}/healthz", timeout_s=90, process=up)
        body = json.loads(wait_for_http(f"{base}/readyz?deep=1", timeout_s=60, process=up))
        assert body["checks"]["worker"]["ok"] is True
        children = _children(up.pid)
        assert len(children) >= 3  # web, worker, beat (+ sandbox)
    finally:
        status = _stop(up, signal.SIGINT)
    log = (tmp_path / "up.log").read_text()
    assert status == 0, log[-3000:]
    assert "warmline: stopped" in log
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"child {child} survived Ctrl-C"
