-- Usernames are unique on their folded form (as migrations/sqlite/0006): the column is
-- filled by the gateway when it opens the database after migrating
-- (SQLStore.fill_username_keys, the same code as on SQLite); an older row whose key another
-- user already holds keeps NULL and is found by its exact username.
ALTER TABLE users ADD COLUMN username_key TEXT;
CREATE UNIQUE INDEX users_username_key ON users (tenant_id, username_key);
