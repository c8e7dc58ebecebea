"""Fixtures shared by several test files go here (none yet); pytest.ini puts the repository root on sys.path."""
