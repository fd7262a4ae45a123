"""docs/openapi.json: the committed API contract is the one the gateway serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gateway.openapi import build_document, main, render

ROOT = Path(__file__).resolve().parents[4]
COMMITTED = ROOT / "docs" / "openapi.json"

# Clients generated from the contract name their methods after these: renaming one is a
# breaking change of the contract, so it is spelt out here.
OPERATION_IDS = {
    ("get", "/api/v1/audit/"): "list_audit",
    ("get", "/api/v1/events/"): "list_events",
    ("get", "/api/v1/clients/"): "list_clients",
    ("post", "/api/v1/clients/"): "create_client",
    ("post", "/api/v1/clients/import"): "import_clients",
    ("get", "/api/v1/clients/import/jobs/{job_id}"): "get_import_job",
    ("get", "/api/v1/clients/{client_id}/"): "get_client",
    ("patch", "/api/v1/clients/{client_id}/"): "patch_client",
    ("put", "/api/v1/clients/{client_id}/"): "put_client",
    ("delete", "/api/v1/clients/{client_id}/"): "delete_client",
    ("get", "/api/v1/mailings/"): "list_mailings",
    ("post", "/api/v1/mailings/"): "create_mailing",
    ("post", "/api/v1/mailings/preview/"): "preview_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/resend/"): "resend_mailing",
    ("get", "/api/v1/mailings/{mailing_id}/"): "get_mailing",
    ("patch", "/api/v1/mailings/{mailing_id}/"): "patch_mailing",
    ("put", "/api/v1/mailings/{mailing_id}/"): "put_mailing",
    ("delete", "/api/v1/mailings/{mailing_id}/"): "delete_mailing",
    ("get", "/api/v1/mailings/{mailing_id}/messages/"): "list_mailing_messages",
    ("post", "/api/v1/mailings/{mailing_id}/cancel/"): "cancel_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/pause/"): "pause_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/resume/"): "resume_mailing",
    ("get", "/api/v1/stats/"): "get_overall_stats",
    ("get", "/api/v1/mailings/{mailing_id}/stats/"): "get_mailing_stats",
    ("get", "/api/v1/opt-outs/"): "list_opt_outs",
    ("post", "/api/v1/opt-outs/"): "create_opt_out",
    ("post", "/api/v1/opt-outs/import"): "import_opt_outs",
    ("get", "/api/v1/opt-outs/{phone}/"): "get_opt_out",
    ("delete", "/api/v1/opt-outs/{phone}/"): "delete_opt_out",
    ("post", "/api/v1/inbound/"): "receive_inbound",
    ("get", "/healthz"): "get_health",
    ("get", "/readyz"): "get_readiness",
    ("get", "/metrics"): "get_metrics",
}


def test_committed_document_matches_the_gateway() -> None:
    # A fresh interpreter with no settings, as `make openapi` runs it.
    fresh = subprocess.run(
        [sys.executable, "-m", "gateway.openapi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert COMMITTED.read_text(encoding="utf-8") == fresh, (
        "docs/openapi.json is out of date with the gateway: run `make openapi` "
        "(.venv/bin/python -m gateway.openapi --output docs/openapi.json) and commit the result"
    )


def test_every_operation_has_its_stable_id() -> None:
    document = build_document()
    found = {
        (method, path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert found == OPERATION_IDS


def test_the_document_does_not_depend_on_local_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render(build_document())
    monkeypatch.setenv("OIDC_ISSUER", "https://login.example.com/")
    monkeypatch.setenv("API_KEYS", "a-real-looking-key-0123456789abcdef")
    assert render(build_document()) == before


def test_main_writes_the_document_to_output(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"

    main(["--output", str(target)])

    assert orjson.loads(target.read_bytes())["info"]["title"].startswith("SMS mailing platform")
    assert target.read_text(encoding="utf-8") == render(build_document())
