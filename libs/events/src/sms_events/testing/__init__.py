"""Test support shipped with the contracts: per-run database and broker names, fixtures."""
