"""Consume events from RabbitMQ, idempotently, with a dead-letter queue: in batches
(``BatchConsumer``) or one delivery at a time (``DeliveryConsumer``), over one queue topology
(``ConsumerQueue``: declaration, bindings, dead-lettering, the signature check, acks, gauges).

Each service owns one durable quorum queue bound to the routing keys it needs. Deliveries are
gathered into batches (up to ``batch_size``, or whatever arrived within ``batch_wait``) and
handled in one PostgreSQL transaction that also records every event id in
``processed_events``; a redelivered event is filtered out there, so it changes nothing. A
consumer writing a projection that ``sms-replay`` can rebuild also skips what the rebuild
already folded (``sms_events.replay.unfolded``). That
transaction is opened by ``sms_events.store.appending``, so the handler may append events,
unless the consumer is built with ``appends=False``. Acks go out after the commit, one per
batch. A batch whose handler raises is retried event by event; an event that still fails after
``attempts`` tries, or that is not a CloudEvent at all, goes to the queue's dead-letter queue
with the reason in its ``sms-dead-letter-reason`` header. So does every delivery the relay did
not sign (sms_events.signing), before it is even parsed: it is never handled. Database or
connection errors are not the event's fault: the batch is kept and retried until the database
is back. A statement cut off by a timeout is, though: it counts
as a failure like any other (``sms_events.db.is_transient``).

While it runs, a consumer reports its queue's depth (a passive declare every
``depth_interval`` seconds, on a channel of its own) and its lag: the age of the newest event
of each batch when it was handled (``sms_consumer_lag_seconds``, back to 0 once the queue has
stayed empty, with nothing handled, for an interval) and of every event
(``sms_consumer_event_age_seconds``).

Log lines written while a batch is handled carry the ``correlation_id`` of its first event and
``batch_events`` (handlers that append events trace each event themselves). The
``DeliveryConsumer`` handles every delivery inside ``sms_events.tracing.traced`` with its
event's correlation id, so the events the handler appends carry it on, with the event as their
cause; it writes nothing to ``processed_events`` (its handlers keep their own records).
"""

from sms_events.consumer.batches import BatchConsumer, BatchHandler, prune_processed
from sms_events.consumer.deliveries import DeliveryConsumer, DeliveryHandler
from sms_events.consumer.topology import DEAD_LETTER_REASON, ConsumerQueue, QueueSpec

__all__ = [
    "DEAD_LETTER_REASON",
    "BatchConsumer",
    "BatchHandler",
    "ConsumerQueue",
    "DeliveryConsumer",
    "DeliveryHandler",
    "QueueSpec",
    "prune_processed",
]
