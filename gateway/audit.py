"""The audit trail: which security events are recorded, what each says, and how they are read.

Events are appended to an append-only table (``Store.add_audit``, or the ``audit`` argument of
the store method whose change they record, so a token issued on a login costs no commit of
its own). Each names its time, tenant, actor, subject, client address and request id; its
``detail`` holds kinds, jtis, reasons and counts, never a password, token or key.

Where an event comes from: logins (``identity.logins.PasswordCheck`` tells ``AuditTrail``
of each refused one; a successful one is recorded with the tokens it opens, by
``tokens.lifecycle``), token issue and revocation (``tokens.lifecycle``), and user, tenant
and key administration (``gateway.admin``, for the admin API and the CLI alike). Login and
token events happen below the handlers, in services that take no request, so a request's
client address and id reach them through ``ORIGIN``, set once per request by the
middleware; the command line leaves it empty.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from gateway.durations import parse_duration
from gateway.netaddr import IPAddress
from gateway.storage import AuditEvent, AuditRecord, Store
from gateway.storage.base import DetailValue

__all__ = [
    "ORIGIN",
    "Action",
    "AuditTrail",
    "Origin",
    "Since",
    "describe",
    "event",
    "format_line",
    "format_time",
    "parse_since",
]


class Action(enum.StrEnum):
    """What an audit event records."""

    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_BANNED = "login_banned"
    LOGOUT = "logout"
    TOKEN_ISSUED = "token_issued"
    TOKEN_REVOKED = "token_revoked"
    USER_CREATED = "user_created"
    USER_CHANGED = "user_changed"
    USER_DISABLED = "user_disabled"
    PASSWORD_CHANGED = "password_changed"
    KEY_ROTATED = "key_rotated"
    TENANT_ADDED = "tenant_added"


#: The actor of what the command line does (it runs on the gateway's own machine).
CLI_ACTOR = "cli"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the request being served came from."""

    address: IPAddress | None = None
    request_id: str | None = None


#: The current request's origin (the middleware sets it); None outside a request.
ORIGIN: ContextVar[Origin | None] = ContextVar("audit_origin", default=None)
_NOWHERE = Origin()


def event(action: Action, tenant: str, at: float, *, actor: str | None = None,
          subject: str | None = None, **detail: DetailValue) -> AuditEvent:
    """An event of the current request (its address and id from ``ORIGIN``)."""
    origin = ORIGIN.get() or _NOWHERE
    return AuditEvent(
        at=at, tenant=tenant, action=action.value, actor=actor, subject=subject,
        address=None if origin.address is None else str(origin.address),
        request_id=origin.request_id, detail=detail,
    )


@dataclass(frozen=True, slots=True)
class Since:
    """The start of an audit listing: a point in time, or a span back from now."""

    at: float | None = None
    ago: int | None = None

    def resolve(self, now: float) -> float:
        """The epoch second the listing starts at."""
        return self.at if self.at is not None else now - (self.ago or 0)


def parse_since(value: object) -> Since:
    """``since`` as given to the admin API or ``gateway audit --since``: an ISO 8601 date or
    time (UTC unless it names an offset), or a duration back from now ("1 hour", "90m",
    "2 days", 3600). Raises ValueError saying what was expected."""
    if isinstance(value, str) and value[:4].isdigit() and value[4:5] == "-":
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return Since(at=moment.timestamp())
    try:
        return Since(ago=parse_duration(value))
    except ValueError:
        raise ValueError("expected an ISO 8601 time (2025-01-31T12:00:00Z) or a duration "
                         "back from now (\"1 hour\", \"2 days\")") from None


def format_time(at: float) -> str:
    """``at`` as ISO 8601 UTC with milliseconds (``2025-01-31T12:00:00.123Z``)."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(record: AuditRecord) -> dict[str, object]:
    """An event as the admin API answers it."""
    event = record.event
    return {
        "seq": record.seq,
        "time": format_time(event.at),
        "action": event.action,
        "tenant": event.tenant,
        "actor": event.actor,
        "subject": event.subject,
        "address": event.address,
        "request_id": event.request_id,
        "detail": dict(event.detail),
    }


def format_line(record: AuditRecord) -> str:
    """An event as one line of ``gateway audit``: time, action, then ``name=value`` pairs."""
    event = record.event
    fields: list[tuple[str, object]] = [
        ("tenant", event.tenant), ("actor", event.actor), ("subject", event.subject),
        ("address", event.address), ("request_id", event.request_id),
        *sorted(event.detail.items()),
    ]
    pairs = " ".join(f"{name}={_value(value)}" for name, value in fields if value is not None)
    return f"{format_time(event.at)} {event.action} {pairs}"


def _value(value: object) -> str:
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    text = str(value)
    # repr() quotes what would break the line into fields (spaces, '=', controls).
    if not text or any(char.isspace() or char == "=" or not char.isprintable() for char in text):
        return repr(text)
    return text


Refusal = Literal["failed", "banned"]

#: Entries of ``AuditTrail``'s ban memory beyond which expired ones are dropped.
_BAN_MEMORY = 10_000


class AuditTrail:
    """Records events and reads them back."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        #: (tenant, login, address) → when its ban ends, as last recorded by this process.
        self._bans: dict[tuple[str, str, str], float] = {}

    async def record(self, events: Sequence[AuditEvent]) -> None:
        """Append events that no other write of the store carries."""
        await self._store.add_audit(events)

    async def login_refused(self, tenant: str, login: str, address: str, outcome: Refusal,
                            retry_after: float = 0.0) -> None:
        """A refused password check (``PasswordCheck``'s hook): a wrong password, an unknown
        login or a disabled user ("failed"), or an attempt during a ban ("banned").

        A ban is recorded once per login and address while it lasts (per process): the
        attempts it refuses are not counted either, and an attacker hammering a banned
        login must not fill the trail.
        """
        now = self._clock()
        if outcome == "banned":
            key = (tenant, login, address)
            if self._bans.get(key, 0.0) > now:
                return
            if len(self._bans) >= _BAN_MEMORY:
                self._bans = {k: end for k, end in self._bans.items() if end > now}
            self._bans[key] = now + retry_after
            action, detail = Action.LOGIN_BANNED, {"retry_after": math.ceil(retry_after)}
        else:
            action, detail = Action.LOGIN_FAILED, {}
        await self._store.add_audit([event(action, tenant, now, actor=login, subject=login,
                                           **detail)])

    async def events(self, tenant: str, *, user: str | None, since: Since | None,
                     limit: int) -> list[AuditRecord]:
        """The tenant's events, newest first (see ``Store.list_audit``)."""
        start = None if since is None else since.resolve(self._clock())
        return await self._store.list_audit(tenant, user=user, since=start, limit=limit)
