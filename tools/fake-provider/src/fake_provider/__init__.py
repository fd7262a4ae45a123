"""A fake of the external SMS (probe) API, for tests, local runs and benchmarks."""

from fake_provider.app import FakeProvider, RunningProvider, create_app, running
from fake_provider.config import Settings, load_settings

__all__ = ["FakeProvider", "RunningProvider", "Settings", "create_app", "load_settings", "running"]
