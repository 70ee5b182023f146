"""A scenario in, an outcome out: one pool, or a fleet of pools behind rule-based routes."""
