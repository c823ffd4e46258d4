"""The one error taxonomy at the edge (STYLE.md habit 5).

Connectors map every provider fault to one of these, once; the sync engine, the workers and the
API speak only these. Messages never carry addresses, subjects or tokens: they end up in logs.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class for faults that come from a provider."""


class ReauthRequired(ProviderError):
    """The grant is gone (revoked, expired, consent withdrawn): only the user can fix it."""


class RateLimited(ProviderError):
    """The provider asked us to slow down."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CursorExpired(ProviderError):
    """An incremental cursor is no longer valid (Gmail history 404, Calendar/Graph 410).

    `restart_from`: the backfill cursor the fresh full listing starts from, when the connector
    needs to say how (e.g. a Graph calendar without delta, which is listed in full every round).
    """

    def __init__(self, message: str, *, restart_from: str | None = None) -> None:
        super().__init__(message)
        self.restart_from = restart_from


class ProviderUnavailable(ProviderError):
    """5xx, timeouts, dropped connections: transient, retry with backoff."""


class ProviderRejected(ProviderError):
    """A 4xx that is neither auth nor quota: our request was wrong or the item is gone."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OAuthFlowError(Exception):
    """A sign-in/connect callback that must be refused (bad state, denied consent, ...)."""
