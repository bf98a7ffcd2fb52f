"""The jobs process: APScheduler triggers passes; each pass claims its work in the database."""
