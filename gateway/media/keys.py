"""Tenant signing keys of media tokens: new key material, and key objects built once.

Each tenant gets, on first need, an RSA 2048 key (RS256/384/512), EC P-256 (ES256), EC
P-384 (ES384) and an HMAC secret (HS256), kept in the store; python-jose key objects are
built from them once per (kid, algorithm) and reused (SPEC §7).
"""

from __future__ import annotations

import base64
import json
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk

__all__ = ["FAMILY_OF", "MediaKeyCache", "generate_key"]

#: Which kind of key signs each media algorithm (one RSA key serves RS256/384/512).
FAMILY_OF = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "ES256": "EC-P256", "ES384": "EC-P384",
    "HS256": "HMAC",
}
RSA_BITS = 2048
HMAC_BYTES = 32


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def generate_key(family: str, kid: str) -> tuple[str, str | None]:
    """New key material of ``family``: (private text, public JWK JSON or None for HMAC).

    RSA 2048 and EC keys are PKCS#8 PEM; HMAC secrets are 32 random bytes, base64url.
    Slow for RSA (tens of milliseconds): callers run it off the event loop.
    """
    if family == "HMAC":
        secret = base64.urlsafe_b64encode(secrets.token_bytes(HMAC_BYTES)).decode("ascii")
        return secret, None
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    public: dict[str, str]
    if family == "RSA":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        numbers = private.public_key().public_numbers()
        public = {"kty": "RSA", "n": _b64url(numbers.n), "e": _b64url(numbers.e)}
    elif family in ("EC-P256", "EC-P384"):
        curve: ec.EllipticCurve = ec.SECP256R1() if family == "EC-P256" else ec.SECP384R1()
        size = 32 if family == "EC-P256" else 48
        private = ec.generate_private_key(curve)
        point = private.public_key().public_numbers()
        public = {
            "kty": "EC", "crv": "P-256" if family == "EC-P256" else "P-384",
            "alg": "ES256" if family == "EC-P256" else "ES384",
            "x": base64.urlsafe_b64encode(point.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(point.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        }
    else:
        raise ValueError(f"unknown key family {family!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, json.dumps({**public, "kid": kid, "use": "sig"})


class MediaKeyCache:
    """One python-jose key object per (kid, algorithm), built once (SPEC §7).

    Building a key object parses the PEM (milliseconds for RSA); signing with a prepared
    one costs a fraction of that. Keys never change under their kid, so entries never
    go stale; a retired key stays until the process ends.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], tuple[object, object]] = {}

    def _pair(self, kid: str, algorithm: str, family: str, private_text: str) -> tuple[object, object]:
        cache_key = (kid, algorithm)
        pair = self._keys.get(cache_key)
        if pair is None:
            if FAMILY_OF.get(algorithm) != family:
                raise ValueError(f"{algorithm} cannot use a {family} key")
            if family == "HMAC":
                secret = jwk.construct(base64.urlsafe_b64decode(private_text.encode("ascii")),
                                       algorithm)
                pair = (secret, secret)
            else:
                private = jwk.construct(private_text, algorithm)
                pair = (private, private.public_key())
            self._keys[cache_key] = pair
        return pair

    def signing(self, kid: str, algorithm: str, family: str, private_text: str) -> object:
        """The key object that signs with ``kid`` and ``algorithm``, built on first use."""
        return self._pair(kid, algorithm, family, private_text)[0]

    def verifying(self, kid: str, algorithm: str, family: str, private_text: str) -> object:
        """The key object that verifies: the public half for RSA/EC, the secret for HMAC."""
        return self._pair(kid, algorithm, family, private_text)[1]
