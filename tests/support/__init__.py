"""Test support shared by the tree's test suites (importable as ``tests.support``)."""
