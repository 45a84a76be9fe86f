-- Usernames are unique on their folded form (gateway/usernames.py: NFKC, case-folded,
-- NFKC again), so that `admin`, `Admin` and a look-alike cannot sit side by side in a
-- tenant, and a user is looked up by it. SQLite cannot compute that key (its lower() is
-- ASCII-only), so the column is filled by the gateway when it opens the database after
-- migrating (SQLStore.fill_username_keys, the same code for both dialects). Until then,
-- and for an older row whose key another user already holds, the key is NULL: such a user
-- is still found by their exact username, and a NULL never collides in a unique index.
ALTER TABLE users ADD COLUMN username_key TEXT;
CREATE UNIQUE INDEX users_username_key ON users (tenant_id, username_key);
