"""Who receives a mailing and when: filters, a future start, local send windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.e2e_support import (
    assert_counter,
    create_client,
    create_mailing,
    eventually,
    iso,
    mailing,
    now,
    recipients,
    unique_tag,
)
from tests.e2e.system_support import System


def test_filter_by_tag_and_by_operator_code(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        by_tag = create_client(api, tag=tag)
        by_code = create_client(api, phone="79560000001", tag="other")
        create_client(api, phone="79570000001", tag="other")
        m = create_mailing(api, client_filter=f" 956 , {tag} ")
        msgs = eventually(lambda: recipients(api, m["id"], 2))
        assert {x["client_id"] for x in msgs} == {by_tag["id"], by_code["id"]}
        eventually(lambda: assert_counter(api, m["id"], "delivered_messages", 2))


def test_future_start_waits_and_windows_follow_each_clients_zone(system: System) -> None:
    tag = unique_tag()
    zones = ["Europe/Moscow", "Asia/Vladivostok", "America/New_York", "Asia/Kathmandu"]
    with system.api() as api:
        clients = {z: create_client(api, tag=tag, time_zone=z) for z in zones}
        # A window across midnight, a week ahead: 22:00-06:00 local.
        start = (now() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
        m = create_mailing(
            api,
            client_filter=tag,
            datetime_start=iso(start),
            datetime_end=iso(start + timedelta(days=2)),
            send_interval_time_start="22:00",
            send_interval_time_end="06:00",
        )
        msgs = eventually(lambda: recipients(api, m["id"], len(zones)))
        for x in msgs:
            (zone,) = [z for z, c in clients.items() if c["id"] == x["client_id"]]
            due = datetime.fromisoformat(str(x["datetime_send"]).replace("Z", "+00:00"))
            local = due.astimezone(ZoneInfo(zone)).time()
            assert local.hour >= 22 or local.hour < 6, (zone, due)
            assert start <= due < start + timedelta(days=1), (zone, due)
            assert x["status"] == "SC"
        got = mailing(api, m["id"])
        assert got["state"] == "scheduled" and got["scheduled_messages"] == len(zones)


def test_window_across_a_dst_change_uses_the_new_offset(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        client = create_client(api, tag=tag, time_zone="Europe/Berlin")
        # Berlin springs forward on 2027-03-28 at 02:00 (UTC+1 -> UTC+2); window 02:30-04:00.
        start = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)
        m = create_mailing(
            api,
            client_filter=tag,
            datetime_start=iso(start),
            datetime_end=iso(start + timedelta(days=1)),
            send_interval_time_start="02:30",
            send_interval_time_end="04:00",
        )
        (x,) = eventually(lambda: recipients(api, m["id"], 1))
        assert x["client_id"] == client["id"]
        # 02:00-03:00 does not exist that night: the first local time in the window is 03:00
        # CEST = 01:00 UTC.
        assert x["datetime_send"].startswith("2027-03-28T01:00:00")


def test_a_client_with_no_send_moment_gets_no_message(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        create_client(api, tag=tag, time_zone="UTC")
        reachable = create_client(api, tag=tag, time_zone="Asia/Vladivostok")
        # 10:00-11:00 UTC is 20:00-21:00 in Vladivostok (UTC+10) and never 20:00 in UTC.
        start = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
        m = create_mailing(
            api,
            client_filter=tag,
            datetime_start=iso(start),
            datetime_end=iso(start + timedelta(hours=1)),
            send_interval_time_start="20:00",
            send_interval_time_end="21:00",
        )
        (x,) = eventually(lambda: recipients(api, m["id"], 1))
        assert x["client_id"] == reachable["id"]
        assert mailing(api, m["id"])["clients_count"] == 1
