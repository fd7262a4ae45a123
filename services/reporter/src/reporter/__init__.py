"""Reporter: statistics projections of the message events, and an internal read API."""
