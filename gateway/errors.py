"""One exception root for everything a client is told, and the one place that renders it.

Handlers raise; the error middleware calls ``render``. Each API family keeps the error body
of its seed document, chosen here by path, never in a handler.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

__all__ = [
    "BadCaller",
    "BadRequest",
    "Conflict",
    "ConflictingForwardHeaders",
    "ErrorShape",
    "FieldErrors",
    "Forbidden",
    "GatewayError",
    "InvalidCredentials",
    "InvalidToken",
    "NotFound",
    "ServiceUnavailable",
    "TooManyAttempts",
    "Unauthenticated",
    "UnknownTenant",
    "challenge_for",
    "render",
    "shape_for_path",
    "status_for_path",
]


class GatewayError(Exception):
    """Root of every error answered to a client; carries an HTTP status and a machine code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "Bad request"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(GatewayError):
    """The request body or parameters are malformed or invalid (400)."""


class FieldErrors(BadRequest):
    """Fields are missing or invalid (400); SimpleJWT clients expect them listed by name."""

    code = "invalid"
    REQUIRED: ClassVar[str] = "This field is required."
    BLANK: ClassVar[str] = "This field may not be blank."
    NULL: ClassVar[str] = "This field may not be null."

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {text}" for field, text in errors.items()))


class UnknownTenant(GatewayError):
    """X-TENANT-ID names no tenant (400)."""

    code = "unknown_tenant"
    default_message = "Unknown tenant"


class Unauthenticated(GatewayError):
    """Credentials are missing or bad on a protected route (401)."""

    status = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are invalid"
    challenge: ClassVar[str] = 'Basic realm="gateway", Bearer realm="gateway"'


class InvalidCredentials(GatewayError):
    """A username/password pair was refused (401)."""

    status = 401
    code = "invalid_credentials"
    default_message = "Invalid credentials"


class InvalidToken(Unauthenticated):
    """A token is malformed, badly signed, expired, revoked or of the wrong kind (401)."""

    code = "token_not_valid"
    default_message = "Token is invalid or expired"


class BadCaller(GatewayError):
    """Logout without a live session token and its matching key (401)."""

    status = 401
    code = "bad_caller"
    default_message = "Bad caller"


class Forbidden(GatewayError):
    """Authenticated, but not allowed (403)."""

    status = 403
    code = "forbidden"
    default_message = "Not allowed"


class ConflictingForwardHeaders(Forbidden):
    """``/auth`` got the original request twice, with different values (403): one of them
    is the client's, and nothing tells which."""

    code = "conflicting_forward_headers"
    default_message = "The original request's headers disagree"


class NotFound(GatewayError):
    """The resource does not exist, or is not the caller's to see (404)."""

    status = 404
    code = "not_found"
    default_message = "Not found"


class UserNotFound(NotFound):
    """Login for an unknown user, only when ``login.reveal_unknown_user`` is on (404)."""

    code = "user_not_found"
    default_message = "User not found"


class MethodNotAllowed(GatewayError):
    """The route exists but not for this method (405)."""

    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"


class PayloadTooLarge(GatewayError):
    """The request body is larger than ``server.max_body_size`` (413)."""

    status = 413
    code = "payload_too_large"
    default_message = "Request body too large"


class TooManyAttempts(GatewayError):
    """Too many failed logins for this account or address (429)."""

    status = 429
    code = "too_many_attempts"
    default_message = "Too many failed attempts, try again later"


class InternalError(GatewayError):
    """Anything unexpected (500); details go to the log with the request id, never out."""

    status = 500
    code = "internal_error"
    default_message = "Internal server error"


class ErrorShape(enum.Enum):
    """The error body shape of each API family."""

    SESSION = "session"  # seed 003: {"status": "error", "info"}
    NAMED = "named"  # seeds 001/002: {"message"}
    SIMPLEJWT = "simplejwt"  # seed 004: {"detail", "code"} and DRF field lists
    DEFAULT = "default"  # everything else: {"error", "message"}


# "/api/token" is served as "/api/token/" is (see routes), so it answers in the same shape.
_EXACT = {"/login": ErrorShape.SESSION, "/logout": ErrorShape.SESSION,
          "/api/token": ErrorShape.SIMPLEJWT}
#: SimpleJWT's views announce only Bearer, so a browser never prompts for a password there.
SIMPLEJWT_CHALLENGE = 'Bearer realm="api"'
_PREFIXES = (("/api/v1alpha/token", ErrorShape.NAMED), ("/api/token/", ErrorShape.SIMPLEJWT))


#: Paths whose answer a proxy takes as its verdict: nginx ``auth_request`` passes on only
#: 2xx, 401 and 403, and turns any other status into a 500 for the client.
_VERDICT_PATHS = frozenset({"/auth"})


def status_for_path(path: str, status: int) -> int:
    """Return the status to answer an error with on ``path``.

    On the forward-auth endpoint a client error other than 401 and 403 (a bad path, an
    unknown tenant, a regulated login) is a 403, keeping its code and message: the request
    is refused either way, and no proxy turns it into a 500.
    """
    if path in _VERDICT_PATHS and 400 <= status < 500 and status not in (401, 403):
        return 403
    return status


def shape_for_path(path: str) -> ErrorShape:
    """Return the error body shape of a request path (also for 404/405 on that path)."""
    shape = _EXACT.get(path.rstrip("/") or "/")
    if shape is not None:
        return shape
    for prefix, prefix_shape in _PREFIXES:
        if path.startswith(prefix):
            return prefix_shape
    return ErrorShape.DEFAULT


#: Longest error message answered, and longest field name in a field list: messages quote
#: what the client sent (a field name, a value), and an answer must not echo a 15 KB key.
MESSAGE_LIMIT = 240
FIELD_NAME_LIMIT = 64


def clipped(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters, else its start and its end around
    an ellipsis (the end keeps what a message says about the quoted part)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def render(shape: ErrorShape, error: GatewayError) -> dict[str, Any]:
    """Return the JSON body for ``error`` in the shape ``shape`` clients expect.

    Every message and field name is clipped here (``MESSAGE_LIMIT``, ``FIELD_NAME_LIMIT``),
    whatever the raising code quoted.
    """
    message = clipped(error.message, MESSAGE_LIMIT)
    if shape is ErrorShape.SESSION:
        return {"status": "error", "info": message}
    if shape is ErrorShape.NAMED:
        return {"message": message}
    if shape is ErrorShape.SIMPLEJWT:
        if isinstance(error, FieldErrors):
            return {clipped(field, FIELD_NAME_LIMIT): [clipped(text, MESSAGE_LIMIT)]
                    for field, text in error.errors.items()}
        return {"detail": message, "code": error.code}
    return {"error": error.code, "message": message}


def challenge_for(shape: ErrorShape, error: GatewayError, status: int) -> str | None:
    """Return the ``WWW-Authenticate`` value of an answer, or None when it carries none.

    Only 401s carry one: on the SimpleJWT endpoints every 401 (a refused login as well as
    a bad token) says ``Bearer realm="api"`` as SimpleJWT's views do; elsewhere the
    errors that ask for credentials name the schemes the gateway accepts.
    """
    if status != 401:
        return None
    if shape is ErrorShape.SIMPLEJWT:
        return SIMPLEJWT_CHALLENGE
    if isinstance(error, Unauthenticated):
        return error.challenge
    return None


class Conflict(GatewayError):
    """The thing to create exists already (409)."""

    status = 409
    code = "conflict"
    default_message = "Already exists"


class TokenExpired(InvalidToken):
    """The token's ``exp`` has passed (401)."""

    code = "token_expired"
    default_message = "Token has expired"


class TokenNotYetValid(InvalidToken):
    """The token's ``nbf`` is still ahead (401)."""

    code = "token_not_yet_valid"
    default_message = "Token is not valid yet"


class UserCredentialRequired(Unauthenticated):
    """A media token restricted to a user or roles, used without a user credential (401)."""

    code = "user_credential_required"
    default_message = "This token needs a user credential on the same request"


class AddressNotAllowed(Forbidden):
    """The client address is outside the token's ``rangeip`` (403)."""

    code = "ip_not_allowed"
    default_message = "This token is not valid from this address"


class AddressClaimNotAllowed(Forbidden):
    """A body's ``ip`` from a caller that is neither a trusted proxy nor an admin (403)."""

    code = "ip_not_allowed_here"
    default_message = "Only a trusted proxy or an admin may name the client address"


class MediaNotAllowed(Forbidden):
    """The requested media is not the token's (403)."""

    code = "media_not_allowed"
    default_message = "This token is not valid for this media"


class UserNotAllowed(Forbidden):
    """The user credential has neither the token's username nor one of its roles (403)."""

    code = "user_not_allowed"
    default_message = "This token is not valid for this user"


class WrongTenant(Forbidden):
    """The token belongs to another tenant than the request's (403)."""

    code = "wrong_tenant"
    default_message = "This token belongs to another tenant"


class TokenUsed(Forbidden):
    """A one-time (``unique``) media token that was used already (403)."""

    code = "token_used"
    default_message = "This one-time token has been used"


class BadGateway(GatewayError):
    """The upstream could not be reached or broke the connection (502)."""

    status = 502
    code = "bad_gateway"
    default_message = "The upstream service is unavailable"


class ServiceUnavailable(GatewayError):
    """The database cannot be reached now (503); the client may retry."""

    status = 503
    code = "service_unavailable"
    default_message = "The gateway's database is unavailable; try again"


class GatewayTimeout(GatewayError):
    """The upstream did not answer in time (504)."""

    status = 504
    code = "gateway_timeout"
    default_message = "The upstream service did not answer in time"
