-- The constraints the PostgreSQL schema has too, so that the shared SQL (gateway/storage/
-- repository.py) leans on the schema, not on SQLite's single writer:
-- one active key per tenant and key type (two processes making a tenant's first key at
-- once agree on one: the loser's INSERT … ON CONFLICT DO NOTHING inserts nothing), and
-- emails looked up as lower(email), as PostgreSQL does (users.email keeps COLLATE NOCASE
-- for its uniqueness).
DROP INDEX keys_active;
CREATE UNIQUE INDEX keys_one_active ON keys (tenant_id, algorithm) WHERE retired_at IS NULL;
CREATE INDEX users_email_lower ON users (tenant_id, lower(email));
