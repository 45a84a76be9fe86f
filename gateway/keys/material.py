"""Key material: new keys, their published JWKs, and key objects built once.

A key signs with exactly one algorithm (RFC 8725 §3.1): each tenant gets, on first need,
an RSA 2048 key for each of RS256, RS384 and RS512, an EC P-256 key for ES256, an EC
P-384 key for ES384 and an HMAC secret for HS256, kept in the store. python-jose key
objects are built from them once per (kid, algorithm) and reused: handing PEM text to
python-jose re-parses it on every call.
"""

from __future__ import annotations

import base64
import json
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk

from gateway.storage import KeyRecord

__all__ = ["KEY_TYPE_OF", "KeyObjects", "generate_key", "public_jwk"]

#: The kind of key material each algorithm signs with.
KEY_TYPE_OF = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "ES256": "EC", "ES384": "EC",
    "HS256": "oct",
}
_CURVES: dict[str, tuple[ec.EllipticCurve, str, int]] = {
    "ES256": (ec.SECP256R1(), "P-256", 32),
    "ES384": (ec.SECP384R1(), "P-384", 48),
}
RSA_BITS = 2048
HMAC_BYTES = 32


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_int(number: int, size: int | None = None) -> str:
    return _b64url(number.to_bytes(size or (number.bit_length() + 7) // 8 or 1, "big"))


def generate_key(algorithm: str, kid: str) -> tuple[str, str | None]:
    """New key material for ``algorithm``: (private text, public JWK JSON or None for HMAC).

    RSA 2048 and EC keys are PKCS#8 PEM; HMAC secrets are 32 random bytes, base64url. The
    JWK names its ``kid``, ``alg`` and ``use``. Slow for RSA (tens of milliseconds):
    callers run it off the event loop.
    """
    key_type = KEY_TYPE_OF.get(algorithm)
    if key_type == "oct":
        return base64.urlsafe_b64encode(secrets.token_bytes(HMAC_BYTES)).decode("ascii"), None
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    public: dict[str, str]
    if key_type == "RSA":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        numbers = private.public_key().public_numbers()
        public = {"kty": "RSA", "n": _b64url_int(numbers.n), "e": _b64url_int(numbers.e)}
    elif key_type == "EC":
        curve, curve_name, size = _CURVES[algorithm]
        private = ec.generate_private_key(curve)
        point = private.public_key().public_numbers()
        public = {"kty": "EC", "crv": curve_name,
                  "x": _b64url_int(point.x, size), "y": _b64url_int(point.y, size)}
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, json.dumps({**public, "kid": kid, "alg": algorithm, "use": "sig"})


def public_jwk(record: KeyRecord) -> dict[str, str] | None:
    """The JWK a key is published as, or None for an HMAC secret (never published).

    ``kid``, ``alg`` and ``use`` come from the record, so keys stored before keys had one
    algorithm (whose JWK had no ``alg``) are published like every other.
    """
    if record.public_jwk is None:
        return None
    document: dict[str, str] = json.loads(record.public_jwk)
    return {**document, "kid": record.kid, "alg": record.algorithm, "use": "sig"}


class KeyObjects:
    """One python-jose key object per (kid, algorithm), built once.

    Building a key object parses the PEM (milliseconds for RSA); signing with a prepared
    one costs a fraction of that. Keys never change under their kid, so entries never
    go stale; a retired key stays until the process ends.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], tuple[object, object]] = {}

    def _pair(self, record: KeyRecord, algorithm: str) -> tuple[object, object]:
        cache_key = (record.kid, algorithm)
        pair = self._keys.get(cache_key)
        if pair is None:
            if KEY_TYPE_OF.get(algorithm) == "oct":
                secret = jwk.construct(base64.urlsafe_b64decode(record.private_key.encode("ascii")),
                                       algorithm)
                pair = (secret, secret)
            else:
                private = jwk.construct(record.private_key, algorithm)
                pair = (private, private.public_key())
            self._keys[cache_key] = pair
        return pair

    def signing(self, record: KeyRecord) -> object:
        """The key object that signs with ``record`` (always with its one algorithm)."""
        return self._pair(record, record.algorithm)[0]

    def verifying(self, record: KeyRecord, algorithm: str) -> object | None:
        """The key object that verifies ``algorithm`` with ``record`` (the public half for
        RSA/EC, the secret for HMAC), or None when the key does not verify that algorithm."""
        if not record.verifies(algorithm):
            return None
        return self._pair(record, algorithm)[1]
