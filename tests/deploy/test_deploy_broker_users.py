"""The broker users' permissions name the queues the services really declare."""

from __future__ import annotations

from dispatcher.consumer import QUEUE as DISPATCHER_QUEUE
from dispatcher.projections import PROJECTIONS_QUEUE
from reporter.consumer import QUEUE as REPORTER_QUEUE
from scheduler.consumer import QUEUE as SCHEDULER_QUEUE
from sms_events.broker_users import SERVICE_USERS
from sms_events.testing.processes import SERVICES


def test_every_service_has_a_broker_user() -> None:
    assert set(SERVICE_USERS) == {spec.name for spec in SERVICES}


def test_each_user_may_use_the_queues_its_service_declares_and_no_others() -> None:
    declared = {
        "api-gateway": (),
        "scheduler": (SCHEDULER_QUEUE.name,),
        "dispatcher": (DISPATCHER_QUEUE.name, PROJECTIONS_QUEUE.name),
        "reporter": (REPORTER_QUEUE.name,),
    }
    assert {service: user.queues for service, user in SERVICE_USERS.items()} == declared
