"""Small repository scripts (run them as modules: ``python -m tools.<name>``)."""
