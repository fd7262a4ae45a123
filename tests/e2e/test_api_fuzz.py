"""A property-based fuzz run of the whole OpenAPI document against the real stack
(schemathesis): every operation, inputs that fit the documented schema and inputs that break it,
with a valid API key and without one. No answer may be a 5xx (a 503 is allowed where the
document promises it, while a dependency is down), and every answer must keep to the document:
a documented status, its content type, its schema and its headers.

The contract fuzzed is the committed docs/openapi.json (which a unit test keeps equal to what the
gateway serves). The number of cases run is printed at the end of the module."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.system_support import API_KEY, System

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
OPERATIONS: list[APIOperation] = [
    result.ok() for result in schemathesis.openapi.from_path(DOCUMENT).get_all_operations()
]
# A dozen examples per operation, mode and key: every operation is exercised on each run of
# `make test` without making it the slowest file of the suite.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
RAN: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = f"API fuzz: {sum(RAN.values())} cases ({dict(sorted(RAN.items()))})"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    assert capture is not None
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


def _takes_input(operation: APIOperation) -> bool:
    parts = (operation.path_parameters, operation.query, operation.headers, operation.body)
    return any(len(part) for part in parts)


# Invalid input needs an input to break: operations without one are fuzzed with valid data only.
CASES = [
    pytest.param(operation, mode, id=f"{operation.label}-{mode.value}")
    for operation in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _takes_input(operation)
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_operation_keeps_its_contract(
    system: System, operation: APIOperation, mode: GenerationMode
) -> None:
    keys = {"with key": {"Authorization": f"Bearer {API_KEY}"}, "without key": {}}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        for label, headers in keys.items():
            RAN[f"{mode.value}, {label}"] += 1
            case.call_and_validate(
                base_url=system.gateway_url, headers=headers, checks=CHECKS, timeout=30
            )

    run()
