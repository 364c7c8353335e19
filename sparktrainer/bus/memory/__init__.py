"""An in-memory broker behind aiokafka's client API, for wiring tests: ``memory://<name>``.

With ``kafka_bootstrap_servers="memory://<name>"`` the factories of ``bus/kafka.py`` build a
:class:`MemoryProducer`, :class:`MemoryConsumer` or :class:`MemoryAdmin` on the process's one
broker of that name instead of aiokafka clients: topics of partitions, murmur2 key routing,
headers, offsets, producer timestamps, consumer groups with eager rebalances (roundrobin, range
or sticky), pause/resume, commits, seeks and log ends, all in the process and in milliseconds.
``tests/contract/test_bus_contract.py`` runs the same cases on it and on the real broker;
docs/ARCHITECTURE.md ("In-memory broker") lists where it differs from tansu and Kafka.
"""

from sparktrainer.bus.memory.broker import MemoryBroker, broker_named, is_memory_url
from sparktrainer.bus.memory.clients import MemoryAdmin, MemoryProducer
from sparktrainer.bus.memory.consumer import MemoryConsumer

__all__ = [
    "MemoryAdmin",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryProducer",
    "broker_named",
    "is_memory_url",
]
