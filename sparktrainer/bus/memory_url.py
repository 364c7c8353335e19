"""What names the in-memory broker (``memory://<name>``), apart from the broker's code.

``bus/kafka.py`` asks this of every client it builds; only a memory URL loads ``bus/memory``
(a process on a real broker, a CLI command above all, never pays for it).
"""

from __future__ import annotations

SCHEME = "memory://"


def is_memory_url(bootstrap_servers: str | None) -> bool:
    """Whether these bootstrap servers name an in-memory broker (``memory://<name>``)."""
    return bool(bootstrap_servers) and str(bootstrap_servers).startswith(SCHEME)
