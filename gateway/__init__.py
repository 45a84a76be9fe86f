"""JWT auth gateway: an aiohttp service that issues, checks and revokes JWTs."""

__version__ = "0.1.0"
