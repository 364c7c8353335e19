"""The registry read model: the log folded into SQLite, one module per concern, and its queries.

- ``concern.py``: what a concern declares (DDL, folds per event type, topics, raw decoders).
- ``jobs.py`` (+ its pure folds ``job_folds.py``), ``models.py``, ``names.py`` (names, versions,
  aliases and their history), ``retirement.py`` (archived, deleted, purged): the concerns, with
  their queries; ``search.py``: the models search.
- ``concerns.py``: the one list of concerns the schema, the fold and the projector read.
- ``db.py``: the SQLite file (schema of every concern, transactions, offsets); ``rows.py``:
  pages and row helpers; ``store.py``: opening it and reading from any thread.
- ``fold.py``: each record folded exactly once, its offset stored in the same transaction.
- ``runner.py``: the projector, feeding the fold from the log through ``bus.reader.LogReader``.
- ``resolve.py``: ID / NAME:VERSION / NAME@ALIAS to a model; ``directory.py``: the validator's
  caught-up view (and a plain read-model one); ``changes.py``: what the API and CLI check
  before they publish a registry change; ``files.py``: which files of a model are served.
"""
