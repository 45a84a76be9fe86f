"""The reverse-proxy gateway: access rules and the forward-auth decision (docs/forward-auth.md)."""
