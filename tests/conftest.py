"""
Shared test configuration. pytest.ini puts the repository root first on
sys.path, so unit tests exercise this tree; integration tests run the
installed package, which C{make test} refreshes from this tree.
"""
