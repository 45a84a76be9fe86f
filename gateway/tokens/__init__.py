"""User tokens: claims and verification (pure), signing keys, and their lifecycle."""
