"""Client API keys: constant-time comparison against every key, nothing revealed."""

from __future__ import annotations

import hmac

import pytest

import proxy.api_keys as api_keys
from proxy.api_keys import ApiKeys, bearer_token

KEYS = ApiKeys.from_env_value(" sk-alpha-123 , sk-beta-456,, sk-alpha-123 ")


def test_configured_keys_match_and_others_do_not() -> None:
    assert len(KEYS) == 2 and KEYS
    assert KEYS.matches("sk-alpha-123") and KEYS.matches("sk-beta-456")
    assert KEYS.matches(b"sk-beta-456")
    for wrong in ("sk-alpha-12", "sk-alpha-1234", "SK-ALPHA-123", "", "sk-\u00e9t\u00e9", None):
        assert not KEYS.matches(wrong), wrong
    assert not ApiKeys([]) and not ApiKeys([]).matches("anything")


def test_every_key_is_compared_with_compare_digest_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", spy)
    keys = ApiKeys([f"sk-{i}" for i in range(5)])
    assert keys.matches("sk-0")  # the first key matches ...
    assert calls == [(32, 32)] * 5  # ... and all five were compared, as equal-length digests
    calls.clear()
    assert not keys.matches("x" * 10_000)
    assert calls == [(32, 32)] * 5  # a long wrong key: still digests of the same length


def test_no_key_is_ever_shown() -> None:
    for text in (repr(KEYS), str(KEYS), f"{KEYS}"):
        assert text == "ApiKeys(<2 keys>)"
        assert "alpha" not in text and "sk-" not in text


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer sk-1", "sk-1"),
        (b"bearer   sk-1  ", "sk-1"),
        (b"Basic dXNlcg==", None),
        (b"Bearer ", None),
        (b"sk-1", None),
    ],
)
def test_bearer_token(header: bytes, token: str | None) -> None:
    assert bearer_token(header) == token
