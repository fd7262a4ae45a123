"""The reporter's internal API keeps to its contract (sms_events.reporter_contract): it serves
the contract as OpenAPI, and its real answers parse with the contract's models, which refuse
unknown fields: a change to an answer that the models do not follow fails here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reporter.api import ROUTES
from sms_events.broker import Broker
from sms_events.reporter_contract import (
    PATHS,
    Counters,
    MailingStats,
    MessagePage,
    Overview,
    openapi,
)
from sms_events.runtime import RUNTIME, Runtime
from sms_events.settings import ServiceSettings

from .reporter_support import (
    T0,
    cancelled,
    delivered,
    envelope,
    failed,
    handle,
    ids,
    new_id,
    scheduled,
)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def api(
    pool: asyncpg.Pool, broker: Broker, settings: ServiceSettings
) -> AsyncIterator[Client]:
    app = web.Application()
    app[RUNTIME] = Runtime("reporter", settings, pool, broker, asyncio.Event())
    app.add_routes(ROUTES)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_serves_its_openapi_document_with_the_contracts_schemas(api: Client) -> None:
    resp = await api.get("/openapi.json")
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


async def test_its_real_answers_match_the_contracts_models(api: Client, pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(5)
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        envelope(delivered(mailing, msgs[:2], sent=T0 + timedelta(minutes=1)), at=T0),
        cancelled(mailing, msgs[2:3]),
        failed(mailing, msgs[3:4], attempts=1, error="timeout"),
    )

    async def answer(path: str) -> bytes:
        resp = await api.get(path)
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
    overview = Overview.model_validate_json(await answer("/internal/v1/stats"))
    assert len(overview.sends_per_hour) == 24
    as_of = (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    Overview.model_validate_json(await answer(f"/internal/v1/stats?as_of={as_of}"))
