"""Sandbox server: both listeners, TLS trust, error bodies, dropped connections, latency, admin.

Runs against the session `sandbox` fixture over real sockets on loopback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httplib2
import pytest
import requests
from google.auth import exceptions as google_auth_exceptions
from google.oauth2 import id_token

from sandbox.errors import GoogleError
from sandbox.keys import SigningKey
from sandbox.server import Sandbox
from sandbox.tls import ensure_tls

ROOT = Path(__file__).resolve().parents[2]

# -- listeners and TLS --------------------------------------------------------------------------


def test_both_listeners_serve_the_same_app(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    with requests.Session() as plain:
        plain.trust_env = False
        over_http = plain.get(f"{sandbox.http_url}/_sandbox/health", timeout=5)
    over_https = https_session.get(f"{sandbox.https_url}/_sandbox/health", timeout=5)
    assert over_http.status_code == over_https.status_code == 200
    assert over_http.json() == over_https.json()
    assert over_https.json()["https_url"] == sandbox.https_url
    assert sandbox.http_url.startswith("http://127.0.0.1:")
    assert sandbox.https_url.startswith("https://127.0.0.1:")


def test_https_is_not_trusted_without_the_sandbox_ca(sandbox: Sandbox) -> None:
    with requests.Session() as session:
        session.trust_env = False  # system/certifi bundle only
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"{sandbox.https_url}/_sandbox/health", timeout=5)


def test_https_verifies_with_httplib2_ca_certs(sandbox: Sandbox) -> None:
    http = httplib2.Http(ca_certs=sandbox.ca_path, timeout=5)
    response, content = http.request(f"{sandbox.https_url}/_sandbox/health")
    http.close()
    assert response.status == 200
    assert json.loads(content)["ok"] is True


def test_https_answers_on_localhost_name_too(sandbox: Sandbox) -> None:
    port = sandbox.https_url.rsplit(":", 1)[1]
    http = httplib2.Http(ca_certs=sandbox.ca_path, timeout=5)
    response, _ = http.request(f"https://localhost:{port}/_sandbox/health")
    http.close()
    assert response.status == 200


def test_only_loopback_binds() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="0.0.0.0")  # noqa: S104 - the point of the test


def test_persistent_data_dir_keeps_keys_and_ca(tmp_path: Path) -> None:
    with Sandbox(data_dir=tmp_path) as first:
        kid = first.state.google_key.kid
        token = first.state.microsoft_key.sign({"sub": "x"})
        ca = Path(first.ca_path).read_bytes()
    with Sandbox(data_dir=tmp_path) as second:
        assert second.state.google_key.kid == kid
        assert second.state.microsoft_key.verify(token) == {"sub": "x"}
        assert Path(second.ca_path).read_bytes() == ca
    assert (tmp_path / "sandbox.sqlite").exists()


def test_temporary_store_is_removed_at_stop() -> None:
    sb = Sandbox().start()
    directory = Path(sb.ca_path).parent.parent
    assert directory.exists()
    sb.stop()
    assert not directory.exists()


def test_tls_files_are_regenerated_for_another_host(tmp_path: Path) -> None:
    ca = Path(ensure_tls(tmp_path, "127.0.0.1").ca_path).read_bytes()
    assert Path(ensure_tls(tmp_path, "127.0.0.1").ca_path).read_bytes() == ca  # reused
    assert Path(ensure_tls(tmp_path, "127.0.0.2").ca_path).read_bytes() != ca  # host not covered


# -- signing keys -------------------------------------------------------------------------------


class _CertsRequest:
    """A google-auth transport Request that serves fixed JSON (no network)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        payload = self.payload

        class _Response:
            status = 200
            headers: dict[str, str] = {}
            data = json.dumps(payload).encode()

        return _Response()


@pytest.mark.parametrize("shape", ["x509", "jwks"])
def test_google_auth_verifies_tokens_against_published_certs(shape: str) -> None:
    key = SigningKey.generate("google")
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": "warmline-sandbox",
        "sub": "1234",
        "iat": now,
        "exp": now + 3600,
    }
    token = key.sign(claims)
    certs = key.x509_certs() if shape == "x509" else key.jwks()
    verified = id_token.verify_token(
        token, _CertsRequest(certs), audience="warmline-sandbox", certs_url="http://unused/certs"
    )
    assert verified["sub"] == "1234"
    other = SigningKey.generate("other")
    with pytest.raises((ValueError, google_auth_exceptions.GoogleAuthError)):
        id_token.verify_token(
            token, _CertsRequest(other.x509_certs()), audience="warmline-sandbox", certs_url="x"
        )


def test_jwks_shape_and_stable_kid() -> None:
    key = SigningKey.generate()
    (jwk,) = key.jwks()["keys"]
    assert {"kty", "use", "alg", "kid", "n", "e", "x5c", "x5t"} <= set(jwk)
    assert jwk["kid"] == key.kid
    assert SigningKey(key.private_key, key.certificate).kid == key.kid


# -- error bodies -------------------------------------------------------------------------------


def test_google_paths_answer_google_error_bodies(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    response = https_session.get(f"{sandbox.https_url}/gmail/v1/no/such/thing", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == 404
    assert error["status"] == "NOT_FOUND"
    assert error["errors"][0]["domain"] == "global"
    assert set(error["errors"][0]) >= {"message", "domain", "reason"}


def test_graph_paths_answer_graph_error_bodies(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    response = https_session.get(
        f"{sandbox.https_url}/v1.0/nothingHere", headers={"client-request-id": "abc"}, timeout=5
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == "abc"
    assert response.headers["client-request-id"] == "abc"


def test_microsoft_identity_paths_answer_oauth_bodies(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    response = https_session.get(f"{sandbox.https_url}/common/oauth2/v2.0/nothing", timeout=5)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "invalid_request"
    assert {"error_description", "error_codes", "timestamp", "trace_id", "correlation_id"} <= set(
        body
    )


def test_admin_paths_answer_plain_json(sandbox: Sandbox, https_session: requests.Session) -> None:
    response = https_session.get(f"{sandbox.https_url}/_sandbox/nothing", timeout=5)
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_method_not_allowed_is_json(sandbox: Sandbox, https_session: requests.Session) -> None:
    response = https_session.delete(f"{sandbox.https_url}/_sandbox/health", timeout=5)
    assert response.status_code == 405
    assert response.json()["status"] == 405
    assert "GET" in response.headers["Allow"]


def test_injected_google_error_has_the_real_body(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    sandbox.state.controls.fail_next(GoogleError.unauthenticated(), method="probe")
    response = https_session.get(f"{sandbox.https_url}/_sandbox/probe", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="https://accounts.google')
    assert response.json() == {
        "error": {
            "code": 401,
            "message": GoogleError.unauthenticated().message,
            "errors": [
                {
                    "message": GoogleError.unauthenticated().message,
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
        }
    }


def test_graph_throttling_over_http(sandbox: Sandbox, https_session: requests.Session) -> None:
    sandbox.state.controls.configure(graph_limit=3)
    url = f"{sandbox.https_url}/_sandbox/probe?service=graph&mailbox=grace@sandbox-outlook.test"
    statuses = [https_session.get(url, timeout=5).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = https_session.get(url, timeout=5)
    assert last.json()["error"]["code"] == "TooManyRequests"
    assert 590 <= int(last.headers["Retry-After"]) <= 600


# -- dropped connections, slowness, latency -----------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_dropped_connection_is_a_connection_error(
    sandbox: Sandbox, https_session: requests.Session, scheme: str
) -> None:
    base = sandbox.http_url if scheme == "http" else sandbox.https_url
    https_session.get(f"{base}/_sandbox/health", timeout=5)  # the listener is fine before
    sandbox.state.controls.fail_next("drop", method="probe")
    with pytest.raises(requests.exceptions.ConnectionError):
        https_session.get(f"{base}/_sandbox/probe", timeout=5)
    assert https_session.get(f"{base}/_sandbox/probe", timeout=5).json()["ok"] is True
    assert sandbox.state.controls.counters()[("gmail", "probe")]["faults"] == 1


def test_dropped_connection_seen_by_httplib2(sandbox: Sandbox) -> None:
    sandbox.state.controls.fail_next("drop", method="probe", count=2)  # httplib2 retries once
    http = httplib2.Http(ca_certs=sandbox.ca_path, timeout=5)
    with pytest.raises((ConnectionError, httplib2.HttpLib2Error, OSError)):
        http.request(f"{sandbox.https_url}/_sandbox/probe")


def test_slow_fault_outlasts_the_client_timeout(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    sandbox.state.controls.configure(slow_s=1.0)
    sandbox.state.controls.fail_next("slow", method="probe")
    with pytest.raises(requests.exceptions.ReadTimeout):
        https_session.get(f"{sandbox.https_url}/_sandbox/probe", timeout=0.3)


def test_latency_is_applied(sandbox: Sandbox, https_session: requests.Session) -> None:
    url = f"{sandbox.https_url}/_sandbox/probe?mailbox=slowpoke@sandbox-gmail.test"
    https_session.get(url, timeout=5)  # connect and handshake outside the measurement
    sandbox.state.controls.set_latency(250, mailbox="slowpoke@sandbox-gmail.test")
    started = time.monotonic()
    assert https_session.get(url, timeout=5).status_code == 200
    assert 0.25 <= time.monotonic() - started < 5
    started = time.monotonic()
    https_session.get(f"{sandbox.https_url}/_sandbox/probe?mailbox=other@x.test", timeout=5)
    assert time.monotonic() - started < 0.25


# -- admin API ----------------------------------------------------------------------------------


def test_admin_controls_round_trip(sandbox: Sandbox, https_session: requests.Session) -> None:
    url = f"{sandbox.https_url}/_sandbox/controls"
    response = https_session.put(
        url,
        json={
            "gmail_profile": "legacy",
            "mailboxes": {"ada@sandbox-gmail.test": {"latency_ms": 5}},
            "costs": {"2026": {"messages.get": 25}},
            "fail_next": [{"fault": "503", "method": "probe", "count": 1}],
        },
        timeout=5,
    )
    assert response.status_code == 200, response.text
    snapshot = https_session.get(url, timeout=5).json()
    assert snapshot["settings"]["gmail_profile"] == "legacy"
    assert snapshot["mailboxes"]["ada@sandbox-gmail.test"] == {"latency_ms": 5}
    assert snapshot["profiles"]["2026"]["costs"]["messages.get"] == 25
    assert https_session.get(f"{sandbox.https_url}/_sandbox/probe", timeout=5).status_code == 503
    counters = https_session.get(f"{sandbox.https_url}/_sandbox/counters", timeout=5).json()
    assert counters["counters"]["gmail"]["probe"]["faults"] == 1
    https_session.post(f"{sandbox.https_url}/_sandbox/controls/reset", timeout=5)
    assert https_session.get(url, timeout=5).json()["settings"]["gmail_profile"] == "2026"


@pytest.mark.parametrize(
    "body",
    [
        {"gmail_profile": "2027"},
        {"faults": {"500": 2}},
        {"nonsense": 1},
        {"fail_next": [{"fault": "teapot"}]},
        {"costs": {"2026": {"messages.get": -1}}},
    ],
)
def test_admin_controls_reject_bad_input(
    sandbox: Sandbox, https_session: requests.Session, body: dict[str, Any]
) -> None:
    response = https_session.put(f"{sandbox.https_url}/_sandbox/controls", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]


def test_admin_rejects_non_json(sandbox: Sandbox, https_session: requests.Session) -> None:
    response = https_session.put(f"{sandbox.https_url}/_sandbox/controls", data=b"[1, 2", timeout=5)
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]


def test_admin_unknown_mailbox_is_404(sandbox: Sandbox, https_session: requests.Session) -> None:
    response = https_session.get(
        f"{sandbox.https_url}/_sandbox/mailboxes/nobody@sandbox-gmail.test", timeout=5
    )
    assert response.status_code == 404
    assert "nobody@sandbox-gmail.test" in response.json()["error"]


def test_admin_mailbox_lifecycle(sandbox: Sandbox, https_session: requests.Session) -> None:
    base = f"{sandbox.https_url}/_sandbox/mailboxes"
    email = "admin-lifecycle@sandbox-gmail.test"
    created = https_session.post(
        base, json={"email": email, "provider": "google", "seed": 3, "messages": 30}, timeout=30
    )
    assert created.status_code == 201, created.text
    assert created.json()["messages"] > 0
    again = https_session.post(base, json={"email": email, "provider": "google"}, timeout=5)
    assert again.status_code == 409
    summary = https_session.get(f"{base}/{email}", timeout=5).json()
    activity = https_session.post(
        f"{base}/{email}/activity", json={"seed": 1, "new": 3, "deleted": 1}, timeout=30
    )
    assert activity.status_code == 200, activity.text
    after = https_session.get(f"{base}/{email}", timeout=5).json()
    assert after["history_id"] > summary["history_id"]
    expired = https_session.post(f"{base}/{email}/expire-cursors", timeout=5).json()
    assert expired["history_floor"] > after["history_id"]
    assert https_session.post(f"{base}/{email}/revoke", timeout=5).json() == {"ok": True}
    truth = https_session.get(f"{base}/{email}/truth?now=2030-01-01T00:00:00Z", timeout=30)
    assert truth.status_code == 200, truth.text
    assert truth.json()["contacts"]
    assert https_session.delete(f"{base}/{email}", timeout=5).status_code == 200
    assert https_session.get(f"{base}/{email}", timeout=5).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "google"},
        {"email": "x@sandbox-gmail.test", "provider": "yahoo"},
        {"email": "x@sandbox-gmail.test", "provider": "google", "messages": 0},
        {"email": "x@sandbox-gmail.test", "provider": "google", "seed": "one"},
        {"email": "x@sandbox-gmail.test", "provider": "google", "colour": "blue"},
    ],
)
def test_admin_create_mailbox_rejects_bad_input(
    sandbox: Sandbox, https_session: requests.Session, body: dict[str, Any]
) -> None:
    response = https_session.post(f"{sandbox.https_url}/_sandbox/mailboxes", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox.state.store.get_mailbox("x@sandbox-gmail.test") is None


def test_admin_truth_rejects_naive_now(
    sandbox: Sandbox, https_session: requests.Session, make_mailbox: Callable[..., str]
) -> None:
    email = make_mailbox(messages=5)
    response = https_session.get(
        f"{sandbox.https_url}/_sandbox/mailboxes/{email}/truth?now=2030-01-01T00:00", timeout=5
    )
    assert response.status_code == 400


def test_make_mailbox_names_are_unique(sandbox: Sandbox, make_mailbox: Callable[..., str]) -> None:
    google = make_mailbox(messages=5)
    microsoft = make_mailbox(provider="microsoft", messages=5)
    assert google != microsoft
    assert google.endswith("@sandbox-gmail.test")
    assert microsoft.endswith("@sandbox-outlook.test")
    assert sandbox.state.store.get_mailbox(microsoft)["provider"] == "microsoft"


# -- python -m sandbox --------------------------------------------------------------------------


def test_main_serves_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "sandbox", "--http-port", "0", "--https-port", "0"]
    argv += ["--data-dir", str(tmp_path), "--demo", "--demo-messages", "20"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    ) as proc:
        try:
            lines: list[str] = []
            assert proc.stdout is not None
            while not lines or not lines[-1].startswith("Press Ctrl-C"):
                line = proc.stdout.readline()
                assert line, "".join(lines)
                lines.append(line.strip())
            urls = dict(line.split(None, 1) for line in lines if line.startswith(("HTTP", "CA")))
            session = requests.Session()
            session.trust_env = False
            session.verify = urls["CA"]
            with session:
                listed = session.get(f"{urls['HTTPS']}/_sandbox/mailboxes", timeout=5).json()
            emails = {m["email"] for m in listed["mailboxes"]}
            assert emails == {"ada@sandbox-gmail.test", "grace@sandbox-outlook.test"}
            proc.send_signal(signal.SIGINT)
            # Generous: a loaded machine is slow to stop; the point is a clean exit.
            assert proc.wait(timeout=30) == 0
            assert "sandbox stopped" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_stop_cuts_requests_in_flight(tmp_path: Path) -> None:
    sb = Sandbox(data_dir=tmp_path).start()  # keeps ca.pem after stop
    sb.state.controls.set_latency(3000)
    errors: list[BaseException] = []

    def slow_request() -> None:
        with requests.Session() as session:
            session.trust_env = False
            try:
                session.get(f"{sb.https_url}/_sandbox/probe", verify=sb.ca_path, timeout=10)
            except requests.exceptions.ConnectionError as exc:
                errors.append(exc)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)  # the request is now inside the server, sleeping its latency
    started = time.monotonic()
    sb.stop()
    thread.join(timeout=10)
    assert len(errors) == 1
    assert time.monotonic() - started < 2.5  # cut, not answered after the 3 s latency


def test_admin_lists_calendars_with_their_events(
    sandbox: Sandbox, https_session: requests.Session
) -> None:
    email = "cal-admin@sandbox-gmail.test"
    base = f"{sandbox.https_url}/_sandbox/mailboxes"
    created = https_session.post(
        base, json={"email": email, "provider": "google", "messages": 20, "seed": 3}, timeout=30
    )
    assert created.status_code == 201
    listed = https_session.get(f"{base}/{email}/calendars", timeout=10).json()["calendars"]
    assert listed[0]["id"] == email  # the primary calendar first
    stored = sum(
        1
        for c in sandbox.state.store.list_calendars(email)
        for r in sandbox.state.store.list_events(email, c["id"], page_size=500)[0]
        if not r["is_deleted"]
    )
    assert sum(len(c["events"]) for c in listed) == stored
    assert https_session.get(f"{base}/nobody@x.test/calendars", timeout=10).status_code == 404
