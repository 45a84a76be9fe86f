-- Tenants, users, every kind of token in one table, signing keys, and login failures.
-- Times are epoch seconds (REAL). Applied in one transaction with its schema_version row.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  REAL NOT NULL
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    username        TEXT NOT NULL,
    email           TEXT COLLATE NOCASE,
    password_hash   TEXT NOT NULL,
    role            INTEGER NOT NULL DEFAULT 2 CHECK (role IN (0, 1, 2)),
    roles           TEXT NOT NULL DEFAULT '[]',          -- JSON array of strings
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    UNIQUE (tenant_id, username),
    UNIQUE (tenant_id, email)
);

-- One row per revocable token, whatever its kind; the JWT itself is never stored.
CREATE TABLE tokens (
    jti             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('access', 'refresh', 'session', 'api', 'media')),
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    user_id         INTEGER REFERENCES users(id),        -- NULL for media tokens
    issued_at       REAL NOT NULL,
    expires_at      REAL NOT NULL,
    revoked_at      REAL,
    revoke_reason   TEXT,
    key_hash        TEXT,            -- session: SHA-256 of the X-Key
    description     TEXT,            -- api: jwt_token_description
    family_id       TEXT,            -- refresh/access: the login they descend from
    parent_jti      TEXT,            -- refresh: the token this one was rotated from
    media_kid       TEXT,            -- media: the seed's "kid" (one-time-use key)
    used_at         REAL             -- refresh: rotated out; media: consumed
);

CREATE INDEX tokens_user ON tokens (user_id, kind);
CREATE INDEX tokens_family ON tokens (family_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
CREATE UNIQUE INDEX tokens_media_kid ON tokens (tenant_id, media_kid) WHERE media_kid IS NOT NULL;

CREATE TABLE keys (
    kid             TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    algorithm       TEXT NOT NULL,
    private_key     TEXT NOT NULL,   -- PEM (RSA/EC) or base64url secret (HMAC)
    public_jwk      TEXT,            -- JSON; NULL for HMAC keys, which are never published
    created_at      REAL NOT NULL,
    retired_at      REAL             -- no longer signs; still verifies until its tokens expire
);

CREATE INDEX keys_tenant ON keys (tenant_id, algorithm);

CREATE TABLE login_failures (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    username    TEXT NOT NULL,
    address     TEXT NOT NULL,
    failed_at   REAL NOT NULL
);

CREATE INDEX login_failures_account ON login_failures (tenant_id, username, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, failed_at);
