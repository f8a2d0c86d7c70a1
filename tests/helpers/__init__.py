"""Code shared by the tests: paths to the real data, data generators, a local Hub server (imported, never collected)."""
