-- One key per algorithm (RFC 8725 §3.1). Until now a key served a type of key material:
-- one RSA key signed RS256, RS384 and RS512 ('RSA'), and 'EC-P256', 'EC-P384' and 'HMAC'
-- keys signed ES256, ES384 and HS256. Each key becomes the key of one algorithm (an RSA
-- key the RS256 key); keys for RS384 and RS512 are made on first need. Tokens the RSA keys
-- signed with RS384 or RS512 keep verifying until they expire: legacy_algorithms names
-- them (NULL for every key made from now on).
ALTER TABLE keys ADD COLUMN legacy_algorithms TEXT;

UPDATE keys SET algorithm = 'RS256', legacy_algorithms = 'RS384 RS512' WHERE algorithm = 'RSA';
UPDATE keys SET algorithm = 'ES256' WHERE algorithm = 'EC-P256';
UPDATE keys SET algorithm = 'ES384' WHERE algorithm = 'EC-P384';
UPDATE keys SET algorithm = 'HS256' WHERE algorithm = 'HMAC';
