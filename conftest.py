"""Root conftest: the shared fixtures for every test under this tree."""

import os

from sms_events.testing.environment import TEST_SIGNING_KEY

pytest_plugins = ["sms_events.testing.fixtures"]

# Every service's Settings requires the event signing key; the tests that build one from the
# environment get the test runs' key, the same one their fixtures and processes use.
os.environ.setdefault("EVENT_SIGNING_KEY", TEST_SIGNING_KEY)
