"""RabbitMQ topology and publishing: a durable topic exchange, persistent messages, confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection

from sms_events.envelope import CONTENT_TYPE, Envelope
from sms_events.feed import cursor_of
from sms_events.settings import RabbitSettings
from sms_events.signing import SIGNATURE_HEADER, Signer
from sms_events.store import RecordedEvent

__all__ = ["Broker", "envelope_of"]


def envelope_of(event: RecordedEvent, source: str) -> Envelope:
    """The CloudEvent published for a stored event (the relay's, and the event feed's)."""
    meta = event.metadata
    return Envelope(
        id=event.event_id,
        type=event.type,
        subject=event.stream_id,
        source=meta.get("source", source),
        time=event.recorded_at,
        data=event.data,
        dataversion=event.schema_version,
        sequence=event.stream_version,
        correlationid=meta.get("correlation_id"),
        causationid=meta.get("causation_id"),
        cursor=cursor_of(event.checkpoint),
    )


class Broker:
    """One robust connection per process; channels reopen by themselves after a broker restart.

    ``publish_timeout`` bounds one ``publish`` call, confirms included: a connection that died
    without a reset (a network partition) would otherwise leave the caller waiting for
    confirms until the heartbeat notices, with the relay stuck and deaf to its stop signal.
    """

    def __init__(self, settings: RabbitSettings, *, publish_timeout: float = 30.0) -> None:
        self.settings = settings
        self.signer = Signer.of(
            settings.event_signing_key.get_secret_value(),
            [key.get_secret_value() for key in settings.event_signing_keys_previous],
        )
        self.publish_timeout = publish_timeout
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._exchange_lock = asyncio.Lock()

    async def connect(self) -> None:
        """Connect; once connected, a lost connection is retried every
        ``amqp_reconnect_interval_s`` until it is back, its channels, QoS, exchanges, queues
        and consumers restored with it (aio-pika's robust connection)."""
        url = self.settings.amqp_url
        options: dict[str, Any] = {}
        if "reconnect_interval" not in parse_qs(urlsplit(url).query):
            options["reconnect_interval"] = self.settings.amqp_reconnect_interval_s
        self.connection = await aio_pika.connect_robust(
            url, client_properties={"connection_name": "sms-events"}, **options
        )

    async def channel(self, prefetch: int = 0) -> AbstractRobustChannel:
        """A new channel with publisher confirms (and ``prefetch`` as its QoS when given)."""
        assert self.connection is not None, "connect() first"
        channel = await self.connection.channel(publisher_confirms=True)
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def exchange(self) -> AbstractExchange:
        """The events exchange on the publishing channel (declared once; the robust channel
        re-declares it after a reconnect, so the object stays valid)."""
        async with self._exchange_lock:  # concurrent first publishes must share one channel
            if self._exchange is None:
                self._publish_channel = await self.channel()
                self._exchange = await declare_exchange(self._publish_channel, self.settings)
            return self._exchange

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish a batch, each message signed (sms_events.signing), and wait until the broker
        confirms every message.

        All messages go out before the first confirm is awaited, so a batch costs one round
        trip, not one per message. Raises if any message is nacked, the connection drops or
        ``publish_timeout`` passes; the caller retries the whole batch (consumers de-duplicate
        by event id). Messages nobody subscribed to are dropped by the broker, not returned.
        """
        async with asyncio.timeout(self.publish_timeout):
            exchange = await self.exchange()
            bodies = [env.to_json() for env in envelopes]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body=body,
                            headers={SIGNATURE_HEADER: self.signer.sign(body)},
                            content_type=CONTENT_TYPE,
                            message_id=str(env.id),
                            correlation_id=env.correlationid,
                            type=env.type,
                            timestamp=env.time,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=env.type,
                        mandatory=False,
                    )
                    for env, body in zip(envelopes, bodies, strict=True)
                )
            )

    async def ping(self) -> bool:
        """Whether the connection is up right now (false while it reconnects)."""
        connection = self.connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def declare_exchange(
    channel: AbstractRobustChannel, settings: RabbitSettings
) -> AbstractExchange:
    return await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
