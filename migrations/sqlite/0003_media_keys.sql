-- Media tokens name the tenant key that signed them, so a retired key can be dropped
-- once no unexpired token needs it; and the active key of a kind is found by index.
ALTER TABLE tokens ADD COLUMN signing_kid TEXT;

CREATE INDEX tokens_signing_kid ON tokens (signing_kid) WHERE signing_kid IS NOT NULL;
CREATE INDEX keys_active ON keys (tenant_id, algorithm, created_at) WHERE retired_at IS NULL;
