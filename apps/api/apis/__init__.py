"""Researcher API views, one per operation (STYLE §2), by resource."""
