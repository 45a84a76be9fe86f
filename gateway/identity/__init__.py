"""Who is calling: credentials read from a request, passwords and regulation, the identity
cache, and resolving credentials into an ``Identity``."""
