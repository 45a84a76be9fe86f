"""Tenant signing keys, one per algorithm, shared by media tokens and (with
``tokens.algorithm`` RS256 or ES256) user tokens: key material, creation on first need,
signing off the event loop, lookup by ``kid``, rotation and the published JWKS."""
