"""``scripts/smoke``: check a running TokenRelay end to end, one printed line per check (``__main__.py``)."""
