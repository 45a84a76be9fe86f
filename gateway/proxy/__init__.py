"""The reverse-proxy gateway: access rules and the forward-auth decision (SPEC §5.5)."""
