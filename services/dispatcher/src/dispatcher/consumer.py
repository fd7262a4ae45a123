"""Dispatcher wiring: the provider client, limiter, breaker, the due-messages queue and the
projections' queue (holds and opt-outs)."""

from __future__ import annotations

import asyncio

import structlog

from dispatcher import metrics
from dispatcher.adaptive_rate import AdaptiveRate
from dispatcher.breaker import BreakerState, CircuitBreaker
from dispatcher.claims import OwnerLease
from dispatcher.config import Settings
from dispatcher.domain import SendRetryRule
from dispatcher.handlers import Dispatcher
from dispatcher.projections import start_projections
from dispatcher.provider import ProviderClient
from dispatcher.provider_hold import ProviderHold
from dispatcher.ratelimit import RateLimiter
from dispatcher.recorder import OutcomeRecorder
from dispatcher.send_rate import RatePolicy
from sms_events.consumer import DeliveryConsumer, QueueSpec
from sms_events.runtime import Runtime

QUEUE = QueueSpec(name="dispatcher", routing_keys=["messages.due"])

log = structlog.get_logger(__name__)

_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _breaker_changed(old: BreakerState, new: BreakerState, _now: float) -> None:
    metrics.BREAKER_STATE.set(_STATE_VALUE[new])
    log.warning("provider_circuit_changed", old=old.value, new=new.value)


async def start(rt: Runtime) -> None:
    settings = rt.settings
    assert isinstance(settings, Settings)
    client = ProviderClient(
        settings.sms_api_url,
        settings.sms_api_token.get_secret_value(),
        concurrency=settings.dispatch_concurrency,
        timeout_s=settings.dispatch_timeout_s,
    )
    adaptive = settings.dispatch_rate_adaptive
    ceiling = settings.dispatch_rate_limit
    floor = min(settings.dispatch_rate_floor, ceiling or settings.dispatch_rate_floor)
    # With the adaptive rate the slot is long enough for one token at the floor, so a rate
    # change never changes the slot the replicas share.
    limiter = RateLimiter(
        rt.pool,
        rate=0 if adaptive else ceiling,
        slot_s=max(0.1, 1 / floor) if adaptive else 0.1,
        on_wait=metrics.RATE_LIMIT_WAIT.inc,
    )
    send_rate = None
    if adaptive:
        policy = RatePolicy(floor=floor, ceiling=ceiling, step=settings.dispatch_rate_step)
        send_rate = AdaptiveRate(rt.pool, limiter, policy)
    breaker = CircuitBreaker(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        max_cooldown_s=settings.breaker_max_cooldown_s,
        on_change=_breaker_changed,
    )
    retries = SendRetryRule(
        settings.dispatch_retry_base_s,
        settings.dispatch_retry_cap_s,
        settings.dispatch_max_attempts,
    )
    lease = OwnerLease(rt.pool, settings.dispatch_claim_lease_s)
    await lease.renew()
    recorder = OutcomeRecorder(
        rt.pool,
        interval_s=settings.dispatch_record_interval_ms / 1000,
        max_batch=max(100, settings.dispatch_concurrency),
        retry=settings.record_retry(),
    )
    provider_hold = ProviderHold(rt.pool)
    dispatcher = Dispatcher(
        rt.pool,
        client,
        limiter,
        breaker,
        retries,
        concurrency=settings.dispatch_concurrency,
        lease=lease,
        recorder=recorder,
        provider_hold=provider_hold,
        send_rate=send_rate,
        stopping=rt.stop,
    )
    # The recorder and the lease outlive the consumer's drain: outcomes of the calls still in
    # flight at stop are recorded before they end.
    drained = asyncio.Event()
    consumer = DeliveryConsumer(
        QUEUE,
        rt.broker,
        dispatcher.handle,
        prefetch=settings.dispatch_prefetch,
        failures=settings.event_retry(),
        outages=settings.outage_retry(),
    )
    await consumer.declare()

    async def run() -> None:
        try:
            await consumer.run(rt.stop)
        finally:
            drained.set()
            await client.close()

    rt.spawn(run(), "consumer")
    rt.spawn(recorder.run(drained), "recorder")
    rt.spawn(lease.run(drained), "lease")
    rt.spawn(provider_hold.run(rt.stop), "provider-hold")
    await start_projections(rt)
    if send_rate is not None:
        rt.spawn(send_rate.run(rt.stop), "send-rate")
