"""User tokens: claims and verification, their keys (the shared secret or the tenant's
RS256/ES256 key), and their lifecycle."""
