"""Client API keys, checked in constant time and never shown.

:class:`ApiKeys` holds the SHA-256 digests of the configured keys (not the keys) and checks a
presented key against *every* one of them with :func:`hmac.compare_digest`, without stopping
at a match: the time taken does not depend on which key matched, on how many leading bytes
of a wrong key were right, or on the presented key's length (both sides are 32-byte digests).
A ``set`` lookup, by contrast, compares the strings with ``==`` after a hash match, and that
comparison stops at the first differing byte.

``repr`` and ``str`` show how many keys there are, never a key or a digest, so an object that
ends up in a log line leaks nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["ApiKeys", "bearer_token"]


class ApiKeys:
    """A set of client keys, compared in constant time (see the module docstring)."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in dict.fromkeys(k.strip() for k in keys) if k)

    @classmethod
    def from_env_value(cls, raw: str) -> ApiKeys:
        """Keys from a comma-separated environment value (``QUANTTRAP_API_KEYS``)."""
        return cls(raw.split(","))

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} keys>)"

    __str__ = __repr__

    def matches(self, presented: str | bytes | None) -> bool:
        """Whether ``presented`` is one of the keys; every key is compared, always."""
        if presented is None:
            return False
        candidate = _digest(presented)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(candidate, digest)
        return found


def bearer_token(authorization: bytes) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def _digest(key: str | bytes) -> bytes:
    data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    return hashlib.sha256(data.strip()).digest()
