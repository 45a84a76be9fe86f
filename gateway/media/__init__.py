"""Media download tokens (seed 000): request parameters, tenant keys, issuing and checking."""
