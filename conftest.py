"""Root conftest: the shared fixtures for every test under this tree."""

pytest_plugins = ["sms_events.testing.fixtures"]
