-- One key per algorithm (RFC 8725 §3.1); see migrations/sqlite/0007. Each key becomes the
-- key of one algorithm (an RSA key the RS256 key); tokens an RSA key signed with RS384 or
-- RS512 keep verifying until they expire: legacy_algorithms names them.
ALTER TABLE keys ADD COLUMN legacy_algorithms TEXT;

UPDATE keys SET algorithm = 'RS256', legacy_algorithms = 'RS384 RS512' WHERE algorithm = 'RSA';
UPDATE keys SET algorithm = 'ES256' WHERE algorithm = 'EC-P256';
UPDATE keys SET algorithm = 'ES384' WHERE algorithm = 'EC-P384';
UPDATE keys SET algorithm = 'HS256' WHERE algorithm = 'HMAC';
