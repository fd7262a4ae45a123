"""The dispatcher's projections and their queue: mailing holds (``holds.py``) and opt-outs
(``opt_outs.py``), what the dispatcher must know to refuse a call the scheduler can no longer
take back; and, for ``sms-replay dispatcher``, the record of every provider call made
(``attempts.py``).

Every replica consumes the one queue, so events reach the replicas out of order: both folds
apply an event only over an older state, which makes that safe. They append nothing, so their
transactions do not hold back the event store's readers (``appends=False``).

A rebuild folds all three from the events. The call records are written live by the recorder,
not by this queue's consumer; claims (rows without an outcome) are operational and carried over
at the swap, as are the rate-limit slots, the send rate, the provider's hold and the owners'
leases, which are no projection at all and never rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dispatcher import attempts, holds, opt_outs
from dispatcher.domain import PROJECTION_NAME
from sms_events.consumer import BatchConsumer, QueueSpec
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.replay import Projection
from sms_events.runtime import Runtime

__all__ = ["PROJECTION", "PROJECTIONS_QUEUE", "fold", "handle_projections", "start_projections"]

PROJECTIONS_QUEUE = QueueSpec(
    name="dispatcher-projections",
    routing_keys=[*holds.ROUTING_KEYS, *opt_outs.ROUTING_KEYS],
)


async def handle_projections(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    await holds.apply_holds(conn, envelopes)
    await opt_outs.apply_opt_outs(conn, envelopes)


async def fold(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Every dispatcher projection from a page of history, in order."""
    await handle_projections(conn, envelopes)
    await attempts.fold_calls(conn, envelopes)


PROJECTION = Projection(
    name=PROJECTION_NAME,
    tables=("dispatcher_mailing_holds", "dispatcher_opt_outs", "dispatcher_attempts"),
    # Calls claimed and not answered yet are the claims' own state: kept as they are.
    carry=("dispatcher_attempts",),
    fold=fold,
    types=frozenset([*holds.ROUTING_KEYS, *opt_outs.ROUTING_KEYS, *attempts.EVENT_TYPES]),
)


async def start_projections(rt: Runtime) -> None:
    consumer = BatchConsumer(
        PROJECTIONS_QUEUE,
        rt.pool,
        rt.broker,
        handle_projections,
        appends=False,
        # An import carries a few hundred phones: 100 events keep one transaction to at most
        # some tens of thousands of rows.
        batch_size=100,
        retention=timedelta(hours=rt.settings.processed_events_retention_h),
        failures=rt.settings.event_retry(),
        outages=rt.settings.outage_retry(),
        projection=PROJECTION.name,
    )
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "projections")
