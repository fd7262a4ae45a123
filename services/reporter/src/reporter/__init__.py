"""Reporter."""
