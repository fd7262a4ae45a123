"""A follow-up mailing's audience: exactly the original's recipients whose messages ended in
the chosen states, clients deleted since left out, resolved in the same bounded chunks as any
audience (two clients per chunk here, so the chunk boundaries are crossed)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from sms_events.contracts import (
    ClientDeleted,
    DeliveredMessage,
    MailingCancelled,
    MessagesDelivered,
    MessagesUndelivered,
    UndeliveredMessage,
)

from .schedule_support import (
    NOW,
    apply_events,
    client_created,
    mailing_scheduled,
    new_id,
    stored_events,
    stored_messages,
)


async def test_a_follow_up_goes_to_the_originals_failed_recipients_only(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    delivered, failed, failed_gone, unsent_a, unsent_b, newcomer = (new_id() for _ in range(6))
    original = new_id()
    await apply_events(pool, [(client_created(c, tag), 1) for c in (delivered, failed, failed_gone,
                                                        unsent_a, unsent_b)])  # fmt: skip
    await apply_events(pool, [(mailing_scheduled(original, tag, NOW - timedelta(minutes=1)), 1)])
    ids = {c: r["message_id"] for c, r in (await stored_messages(pool, original)).items()}
    outcome = [
        MessagesDelivered(
            mailing_id=original, batch_id=f"d{original}",
            messages=[DeliveredMessage(message_id=ids[delivered], attempt=1, sent_at=NOW)],
        ),
        MessagesUndelivered(
            mailing_id=original, batch_id=f"u{original}",
            messages=[UndeliveredMessage(message_id=ids[c], attempts=1, error="HTTP 400",
                                         failed_at=NOW) for c in (failed, failed_gone)],
        ),
        MailingCancelled(mailing_id=original, cancelled_at=NOW),
    ]  # fmt: skip
    await apply_events(pool, [(e, 1) for e in outcome])
    states = {c: r["state"] for c, r in (await stored_messages(pool, original)).items()}
    assert sorted(states.values()) == ["cancelled", "cancelled", "delivered", "undelivered",
                                       "undelivered"]  # fmt: skip
    # A client deleted since, and one who joined the base (matching the tag) since.
    await apply_events(
        pool,
        [
            (ClientDeleted(client_id=failed_gone, deleted_at=NOW), 2),
            (client_created(newcomer, tag), 1),
        ],
    )

    only_failed, failed_and_cancelled = new_id(), new_id()
    follow_ups = [
        (mailing_scheduled(only_failed, None, NOW, source_mailing_id=original,
                  source_statuses=["ND"]), 1),
        (mailing_scheduled(failed_and_cancelled, None, NOW, source_mailing_id=original,
                  source_statuses=["ND", "CA"]), 1),
    ]  # fmt: skip
    await apply_events(pool, follow_ups)
    assert set(await stored_messages(pool, only_failed)) == {failed}
    assert set(await stored_messages(pool, failed_and_cancelled)) == {failed, unsent_a, unsent_b}
    for mailing, n in ((only_failed, 1), (failed_and_cancelled, 3)):
        (resolved,) = await stored_events(pool, mailing, "mailing.audience_resolved")
        assert resolved["recipients"] == n
    # The original keeps its own messages.
    assert len(await stored_messages(pool, original)) == 5
