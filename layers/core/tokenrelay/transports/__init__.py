"""Pure encoders from events to wire formats."""
