"""Statistics: the reporter's figures, read through its HTTP client, and their endpoints."""
