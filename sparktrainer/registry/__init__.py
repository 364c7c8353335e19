"""The registry read model: models and jobs folded from the log into SQLite, and its queries."""
