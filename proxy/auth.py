"""Who may call what: client keys for the API, monitoring keys for what it reveals.

Keys come only from the environment, comma-separated: client keys from
``server.api_keys_env`` (``QUANTTRAP_API_KEYS``), monitoring keys from
``server.monitoring_keys_env`` (``QUANTTRAP_MONITORING_KEYS``). A key is presented as
``Authorization: Bearer <key>`` or, as Anthropic's clients send it, ``x-api-key: <key>``, and
compared in constant time against every key (:class:`~proxy.api_keys.ApiKeys`). Keys are never
logged. What needs which key:

- the OpenAI/Anthropic API (``/v1/...``): a client key, when client keys are set;
- the status API, its page and the evaluation logs (``/quanttrap/...``): a monitoring key or a
  client key, whenever any key is set (they show per-variant accuracy and prompts' hashes);
- ``/metrics``: a monitoring key when monitoring keys are set (Prometheus sends it with
  ``authorization: {credentials: ...}``); else open, unless ``server.protect_metrics``;
- ``/healthz``, ``/readyz``: open (kubelet probes send no key), unless
  ``server.protect_metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import Request

from proxy.api_keys import ApiKeys, bearer_token
from proxy.errors import APIError

__all__ = ["KeyChecker"]

_MISSING = (
    "You didn't provide an API key. Provide it in the Authorization header: "
    "'Authorization: Bearer YOUR_KEY'."
)


class KeyChecker:
    """Checks the key a request presents against the configured client and monitoring keys."""

    __slots__ = ("_client", "_monitoring", "_protect_metrics")

    def __init__(
        self,
        client: Iterable[str],
        monitoring: Iterable[str] = (),
        *,
        protect_metrics: bool = False,
    ) -> None:
        self._client = ApiKeys(client)
        self._monitoring = ApiKeys(monitoring)
        self._protect_metrics = protect_metrics

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        client_variable: str,
        monitoring_variable: str = "QUANTTRAP_MONITORING_KEYS",
        *,
        protect_metrics: bool = False,
    ) -> KeyChecker:
        return cls(
            environ.get(client_variable, "").split(","),
            environ.get(monitoring_variable, "").split(","),
            protect_metrics=protect_metrics,
        )

    @property
    def enabled(self) -> bool:
        return bool(self._client)

    def check_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Raise a 401 :class:`APIError` unless the ASGI ``headers`` carry a client key."""
        if self._client:
            self._require(headers, self._client)

    def _require(self, headers: Iterable[tuple[bytes, bytes]], *sets: ApiKeys) -> None:
        presented: str | bytes | None = None
        for name, value in headers:
            if name == b"authorization":
                presented = bearer_token(value) or b"\x00invalid"
                break
            if name == b"x-api-key":
                presented = value
                break
        if presented is None:
            raise APIError(401, _MISSING, type="authentication_error", code="missing_api_key")
        if not any(keys.matches(presented) for keys in sets):
            raise APIError(
                401,
                "Incorrect API key provided.",
                type="authentication_error",
                code="invalid_api_key",
            )

    async def client(self, request: Request) -> None:
        """FastAPI dependency: a client key (``/v1/...``)."""
        self.check_headers(request.scope["headers"])

    async def status(self, request: Request) -> None:
        """FastAPI dependency: the status API, page and logs (``/quanttrap/...``)."""
        if self._client or self._monitoring:
            self._require(request.scope["headers"], self._monitoring, self._client)

    async def metrics(self, request: Request) -> None:
        """FastAPI dependency: ``/metrics``."""
        if self._monitoring:
            self._require(request.scope["headers"], self._monitoring)
        elif self._protect_metrics and self._client:
            self._require(request.scope["headers"], self._client)

    async def health(self, request: Request) -> None:
        """FastAPI dependency: ``/healthz`` and ``/readyz``."""
        if self._protect_metrics and (self._client or self._monitoring):
            self._require(request.scope["headers"], self._client, self._monitoring)
