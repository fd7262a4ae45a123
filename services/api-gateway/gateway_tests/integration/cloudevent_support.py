"""Stands in for another project: binds its own queue to the events exchange, says "ready",
prints the body of the first message it receives, and exits.

Usage: python cloudevent_support.py AMQP_URL EXCHANGE ROUTING_KEY
"""

from __future__ import annotations

import asyncio
import sys

import aio_pika


async def main(url: str, exchange_name: str, routing_key: str) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=routing_key)
        print("ready", flush=True)
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    print(message.body.decode(), flush=True)
                    return


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
