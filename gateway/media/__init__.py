"""Media download tokens (seed 000): request parameters, issuing and checking
(with the tenants' keys of ``gateway.keys``)."""
