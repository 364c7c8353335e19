"""An in-memory broker behind aiokafka's client API, for wiring tests: ``memory://<name>``.

With ``kafka_bootstrap_servers="memory://<name>"`` the factories of ``bus/kafka.py`` build a
:class:`MemoryProducer`, :class:`MemoryConsumer` or :class:`MemoryAdmin` on the process's one
broker of that name instead of aiokafka clients: topics of partitions, murmur2 key routing,
headers, offsets, producer timestamps, consumer groups with eager rebalances (roundrobin, range
or sticky), pause/resume, commits, seeks and log ends, all in the process and in milliseconds.
``tests/contract/test_bus_contract.py`` runs the same cases on it and on the real broker.

Where it differs from tansu and Kafka (docs/ARCHITECTURE.md, "The in-memory broker"):

- **One process.** Only clients in this process reach it (a CLI in a subprocess cannot);
  security options are ignored (no TLS, SASL or ACLs), connections never fail, and the log
  is gone with the process (no restart keeps anything).
- **Producing.** A send is appended and acknowledged at once (no batching, linger or retries).
  The only size limit is the producer's ``max_request_size``, checked with aiokafka's own
  estimate; no broker-side limit. A record keeps its producer's timestamp (CreateTime, as on
  tansu); a send to a missing topic creates it with the default partition count (as tansu).
- **Log ends are exact.** ``end_offsets`` never lags the log (tansu's S3 ``ListOffsets`` can);
  a fetch sets the high watermark of every partition it looks at, records or not.
- **Times are exact.** ``offsets_for_times`` answers the first record at or after the time,
  None when there is none; tansu answers batch-coarse (early, even 0 when none is that late),
  so callers filter on record timestamps either way.
- **Deletion.** No retention or compaction. ``MemoryAdmin.delete_records`` (Kafka's
  DeleteRecords, which tansu lacks: it closes the connection) moves a partition's log start;
  a position below it resets, as Kafka's OffsetOutOfRange does. Load tests free the log with
  it between rounds, so a process's memory is the service's.
- **Groups.** Eager rebalances, completed when every live member has revoked and rejoined;
  the assignor is named by the first strategy's ``name``. A member is dead once stopped, once
  its event loop closed, or after ``max_poll_interval_ms`` without a poll (it fetches nothing
  then, and rejoins at its next poll): there is no separate heartbeat or session timeout.
  Commits take plain offsets (metadata dropped); a commit from a past generation fails with
  ``CommitFailedError``, as on Kafka. Fetch byte limits are ignored: a fetch returns up to
  ``max_poll_records`` records, starting one partition further on each time.
- **Not offered.** Auto-commit, transactions, idempotence, ``isolation_level``: we use none.
"""

from sparktrainer.bus.memory.broker import MemoryBroker, broker_named, forget_broker
from sparktrainer.bus.memory.clients import MemoryAdmin, MemoryProducer
from sparktrainer.bus.memory.consumer import MemoryConsumer
from sparktrainer.bus.memory_url import is_memory_url

__all__ = [
    "MemoryAdmin",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryProducer",
    "broker_named",
    "forget_broker",
    "is_memory_url",
]
