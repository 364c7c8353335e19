"""The in-memory broker's producer and admin client: the part of aiokafka's API we use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic, RecordsToDelete
from aiokafka.errors import MessageSizeTooLargeError, ProducerClosed
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata

from sparktrainer.bus.memory.broker import broker_named

TOPIC_ALREADY_EXISTS = 36  # Kafka's error code, returned per topic as tansu and Kafka do


class MemoryProducer:
    """``AIOKafkaProducer`` on an in-memory broker: ``send`` appends at once; acks are instant.

    :param bootstrap_servers: ``memory://<name>``.
    :param max_request_size: the largest record (as aiokafka estimates its size) it sends;
        a larger one fails with ``MessageSizeTooLargeError`` before it reaches the log.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        max_request_size: int = 1_048_576,
        default_partitions: int = 3,
        **_ignored: Any,  # aiokafka's tuning and security options mean nothing here
    ) -> None:
        self._broker = broker_named(bootstrap_servers, default_partitions)
        self._max_request_size = max_request_size
        self._partitioner = DefaultPartitioner()
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryProducer({self._broker.name!r}, started={self._started})"

    async def start(self) -> None:
        """Nothing to connect to."""
        self._started = True

    async def stop(self) -> None:
        """Refuse further sends."""
        self._closed = True

    async def flush(self) -> None:
        """Every send is appended already."""

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition numbers (the topic is created if missing, as on tansu)."""
        return self._broker.partitions_or_create(topic)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Append one record; a future already holding its metadata (or the send's error)."""
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if self._closed or not self._started:
            raise ProducerClosed()
        assert not (value is None and key is None), "Need at least one: key or value"
        headers = list(headers or ())
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > self._max_request_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size configuration"
            )
        parts = sorted(self._broker.partitions_or_create(topic))
        if partition is None:
            partition = self._partitioner(key, parts, parts)
        tp = TopicPartition(topic, partition)
        rec = self._broker.append(tp, key, value, headers, timestamp_ms)
        future.set_result(
            RecordMetadata(topic, partition, tp, rec.offset, rec.timestamp, rec.timestamp_type, 0)
        )
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> RecordMetadata:
        """Append one record and return its metadata."""
        return await (await self.send(topic, value, key, partition, timestamp_ms, headers))


@dataclass(frozen=True)
class CreateTopicsAnswer:
    """What ``create_topics`` answers: ``(topic, error code, message)`` per topic, 0 for created."""

    topic_errors: list[tuple[str, int, str | None]]


class MemoryAdmin:
    """``AIOKafkaAdminClient`` on an in-memory broker: list and create topics, delete records."""

    def __init__(self, *, bootstrap_servers: str, **_ignored: Any) -> None:
        self._broker = broker_named(bootstrap_servers)

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def list_topics(self) -> list[str]:
        """Every topic's name."""
        return sorted(self._broker.topics())

    async def create_topics(
        self, new_topics: list[NewTopic], **_ignored: Any
    ) -> CreateTopicsAnswer:
        """Create each topic; one that exists is answered with TOPIC_ALREADY_EXISTS and kept."""
        errors: list[tuple[str, int, str | None]] = []
        for new in new_topics:
            created = self._broker.create_topic(new.name, new.num_partitions)
            message = None if created else "Topic with this name already exists."
            errors.append((new.name, 0 if created else TOPIC_ALREADY_EXISTS, message))
        return CreateTopicsAnswer(errors)

    async def delete_records(
        self, records_to_delete: Mapping[TopicPartition, RecordsToDelete], **_ignored: Any
    ) -> dict[TopicPartition, int]:
        """Kafka's DeleteRecords: each partition's records below the offset go; the new starts."""
        return {
            tp: self._broker.delete_records(tp, todo.before_offset)
            for tp, todo in records_to_delete.items()
        }
