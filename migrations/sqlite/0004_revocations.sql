-- The revocation log: one row for every committed change that can make a live token or a
-- cached identity invalid (a token, a refresh family, a user's tokens or their state, a
-- tenant's keys). Each process keeps the last seq it applied to its identity cache and
-- reads what came after it whenever the change feed says something changed.
CREATE TABLE revocations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('token', 'family', 'user', 'user_state', 'keys')),
    subject     TEXT NOT NULL,   -- jti, family id, user id or tenant id, by scope
    user_id     INTEGER,         -- whose tokens or state (NULL for keys)
    reason      TEXT NOT NULL
);

CREATE INDEX revocations_at ON revocations (at);
