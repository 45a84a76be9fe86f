"""gateway.tokens: user JWTs are typed, keyed by kid, and refuse the known attacks."""

from __future__ import annotations

import base64
import json

import pytest
from jose import jwt

from gateway.errors import InvalidToken
from gateway.tokens.claims import MAX_TOKEN_LENGTH, TokenKind, decode_user_token, issue_user_token, new_jti
from gateway.tokens.keyring import Keyring

SECRET = b"k" * 40
NOW = 1_800_000_000
SESSION = frozenset({TokenKind.SESSION})


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(SECRET)


async def issue(keyring: Keyring, kind: TokenKind = TokenKind.SESSION, **overrides: int) -> str:
    times = {"issued_at": NOW, "expires_at": NOW + 60, **overrides}
    token, signing_kid = await issue_user_token(
        keyring, kind=kind, jti=new_jti(), user_id=7, username="alice", tenant="default",
        issuer="gateway", **times)
    assert signing_kid is None, "the shared secret is no tenant key"
    return token


async def decode(keyring: Keyring, token: object, kinds=SESSION, now: float = NOW, leeway: int = 0):
    return await decode_user_token(keyring, token, kinds=kinds, issuer="gateway", now=now,
                                   leeway=leeway)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_fresh_token_decodes_with_its_claims(keyring):
    claims = await decode(keyring, await issue(keyring))
    assert claims["token_type"] == "session" and claims["sub"] == "7"
    assert claims["username"] == "alice" and claims["tenant"] == "default"


async def test_the_header_names_the_key(keyring):
    header = jwt.get_unverified_header(await issue(keyring))
    assert header == {"alg": "HS256", "kid": keyring.user_kid, "typ": "JWT"}


async def test_another_kind_is_refused(keyring):
    with pytest.raises(InvalidToken):
        await decode(keyring, await issue(keyring, TokenKind.REFRESH))
    assert await decode(keyring, await issue(keyring, TokenKind.API), kinds=frozenset({TokenKind.API}))


@pytest.mark.parametrize(("now", "leeway", "valid"), [
    (NOW + 60, 0, True),
    (NOW + 61, 0, False),
    (NOW + 61, 1, True),
    (NOW - 1, 0, False),  # issued in the future
    (NOW - 1, 1, True),
])
async def test_expiry_and_issue_time_on_the_boundary(keyring, now, leeway, valid):
    token = await issue(keyring)
    if valid:
        assert await decode(keyring, token, now=now, leeway=leeway)
    else:
        with pytest.raises(InvalidToken):
            await decode(keyring, token, now=now, leeway=leeway)


async def test_alg_none_is_refused(keyring):
    claims = jwt.get_unverified_claims(await issue(keyring))
    unsigned = f"{b64({'alg': 'none', 'kid': keyring.user_kid})}.{b64(claims)}."
    with pytest.raises(InvalidToken):
        await decode(keyring, unsigned)


@pytest.mark.parametrize("extra_header", [
    {"jku": "http://127.0.0.1:1/keys"},
    {"x5u": "http://127.0.0.1:1/cert"},
    {"jwk": {"kty": "oct", "k": "AAAA"}},
    {"x5c": ["AAAA"]},
    {"crit": ["exp"]},
])
async def test_key_carrying_and_critical_headers_are_refused(keyring, extra_header):
    claims = jwt.get_unverified_claims(await issue(keyring))
    token = jwt.encode(claims, SECRET, algorithm="HS256",
                       headers={"kid": keyring.user_kid, **extra_header})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


async def test_a_forged_kid_is_refused(keyring):
    claims = jwt.get_unverified_claims(await issue(keyring))
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "../../etc/passwd"})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


async def test_another_secret_is_refused(keyring):
    claims = jwt.get_unverified_claims(await issue(keyring))
    token = jwt.encode(claims, b"o" * 40, algorithm="HS256", headers={"kid": keyring.user_kid})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


async def test_hs384_with_the_right_secret_is_still_refused(keyring):
    claims = jwt.get_unverified_claims(await issue(keyring))
    token = jwt.encode(claims, SECRET, algorithm="HS384", headers={"kid": keyring.user_kid})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


async def test_altered_claims_or_stripped_signature_are_refused(keyring):
    token = await issue(keyring)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"
    for forged in (f"{header}.{b64(claims)}.{signature}", f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(InvalidToken):
            await decode(keyring, forged)


@pytest.mark.parametrize("garbage", [
    "", "a.b.c", "....", None, 42, b"bytes", "x" * (MAX_TOKEN_LENGTH + 1),
    "eyJhbGciOiJIUzI1NiJ9.eyJ.e30", f"{b64({'alg': 'HS256'})}.bm90IGpzb24.AAAA",
])
async def test_garbage_is_invalid_not_an_exception(keyring, garbage):
    with pytest.raises(InvalidToken):
        await decode(keyring, garbage)


@pytest.mark.parametrize("missing", ["jti", "sub", "tenant", "username", "exp", "iat", "token_type"])
async def test_required_claims(keyring, missing):
    claims = jwt.get_unverified_claims(await issue(keyring))
    del claims[missing]
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": keyring.user_kid})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


@pytest.mark.parametrize(("claim", "value"), [("exp", "tomorrow"), ("exp", True), ("iat", None),
                                              ("nbf", NOW + 10), ("iss", "someone-else")])
async def test_bad_claim_values(keyring, claim, value):
    claims = jwt.get_unverified_claims(await issue(keyring))
    claims[claim] = value
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": keyring.user_kid})
    with pytest.raises(InvalidToken):
        await decode(keyring, token)


def test_the_cryptography_backend_is_in_use():
    from jose.backends import RSAKey

    assert RSAKey.__name__ == "CryptographyRSAKey"


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring(b"short")
