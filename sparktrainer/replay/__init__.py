"""Replay: copy a slice of a topic (by offsets or by time, filtered) to a topic, marked as replayed.

Every replayed record keeps its key, value and headers and gains the header
``sparktrainer_replayed_from: topic/partition/offset``. Consumers are idempotent (the registry
upserts, event ids are deterministic), so a replay re-drives work without double-counting what
was already done. ``spec.py`` says what is selected, ``engine.py`` reads and sends; the command
line (``sparktrainer replay``, also ``python -m sparktrainer.replay``) is ``cli/replay.py``.

Recipes:

    # re-drive the jobs the validator rejected in the last day, after fixing the validator
    sparktrainer replay sparktrainer.jobs.submitted --only-rejected --since 1d
    # rebuild the registry read model from the log
    sparktrainer serve projector --rebuild --once
    # copy an hour of lifecycle events to a scratch topic, looking first
    sparktrainer replay sparktrainer.jobs.lifecycle --since 2025-06-01T10:00Z \\
        --until 2025-06-01T11:00Z --to scratch.lifecycle --dry-run
"""
