-- The audit trail: one row per security event (logins, logouts, tokens issued and revoked,
-- user, tenant and key changes), written in the transaction of the change it records.
-- Append-only: no row is ever changed (the trigger refuses it); rows older than
-- audit.retention are deleted by `gateway tokens prune`. Never a password, token or key:
-- `detail` is a JSON object of names, kinds, jtis, reasons and counts.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    tenant_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,            -- who did it: a username, or 'cli' for the command line
    subject     TEXT,            -- to whom or what: a username (a login as typed), a tenant
    address     TEXT,            -- the client address, when it came over HTTP
    request_id  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
