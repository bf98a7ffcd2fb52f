"""The database layer: models, sessions, migrations and the `python -m db` commands."""
