"""Code shared by the test modules (tests import from here, never from each other)."""
