"""The reporter's internal API keeps to its contract (sms_events.reporter_contract): it serves
the contract as OpenAPI, and its real answers parse with the contract's models, which refuse
unknown fields: a change to an answer that the models do not follow fails here."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from sms_events.reporter_contract import (
    PATHS,
    Counters,
    MailingStats,
    MessagePage,
    OverallStats,
    openapi,
)

from .reporter_support import (
    T0,
    Client,
    cancelled,
    delivered,
    envelope,
    failed,
    handle,
    ids,
    new_id,
    scheduled,
)


async def test_serves_its_openapi_document_with_the_contracts_schemas(client: Client) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    served = await resp.json()
    assert served == openapi()
    assert served["openapi"].startswith("3.")
    schemas = served["components"]["schemas"]
    for path, (_, model) in PATHS.items():
        ok = served["paths"][path]["get"]["responses"]["200"]
        ref = ok["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model.__name__}"
        assert model.__name__ in schemas
    assert set(schemas["MessagePage"]["properties"]) == {
        "count",
        "results",
        "next_before",
        "previous_after",
    }


async def test_its_real_answers_match_the_contracts_models(
    client: Client, pool: asyncpg.Pool
) -> None:
    mailing, msgs = new_id(), ids(5)
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        envelope(delivered(mailing, msgs[:2], sent=T0 + timedelta(minutes=1)), at=T0),
        cancelled(mailing, msgs[2:3]),
        failed(mailing, msgs[3:4], attempts=1, error="timeout"),
    )

    async def answer(path: str) -> bytes:
        resp = await client.get(path)
        assert resp.status == 200, path
        return await resp.read()

    counters = Counters.model_validate_json(
        await answer(f"/internal/v1/mailings/counters?ids={mailing}")
    )
    assert counters.root[str(mailing)].delivered_messages == 2
    page = MessagePage.model_validate_json(
        await answer(f"/internal/v1/mailings/{mailing}/messages?page_size=3")
    )
    assert page.count == 5 and len(page.results) == 3 and page.next_before is not None
    stats = MailingStats.model_validate_json(await answer(f"/internal/v1/mailings/{mailing}/stats"))
    assert stats.mailing_id == mailing and stats.messages["DL"] == 2
    assert [f.reason for f in stats.failures] == ["timeout"]
    overview = OverallStats.model_validate_json(await answer("/internal/v1/stats"))
    assert len(overview.sends_per_hour) == 24
    as_of = (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    OverallStats.model_validate_json(await answer(f"/internal/v1/stats?as_of={as_of}"))
