from __future__ import annotations

from flask import Flask

from core.settings import Settings
from server.app import create_app


def test_healthz_answers_without_touching_the_database(settings: Settings) -> None:
    client = create_app(settings).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(migrated_settings: Settings) -> None:
    response = create_app(migrated_settings).test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


def test_readyz_says_what_is_wrong_when_the_database_is_not_migrated(settings: Settings) -> None:
    response = create_app(settings).test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert "alembic_version" in body["checks"]["database"]["error"]


def test_unknown_routes_and_methods_get_json_errors(settings: Settings) -> None:
    client = create_app(settings).test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.is_json
    assert missing.get_json()["error"]["status"] == "not_found"
    wrong = client.post("/healthz")
    assert wrong.status_code == 405
    assert wrong.get_json()["error"]["code"] == 405
    assert "GET" in wrong.headers["Allow"]


def test_a_crash_in_a_view_is_a_json_500_without_internals(settings: Settings) -> None:
    app: Flask = create_app(settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"]["status"] == "internal_server_error"
    assert "secret internal detail" not in response.get_data(as_text=True)
