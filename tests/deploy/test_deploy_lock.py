"""The workspace's dependencies: declared where they are imported, locked with hashes, each
service installable on its own from its pyproject.toml (sms-events from the workspace)."""

from __future__ import annotations

import ast
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deploy_support import ROOT

UV = Path(sys.executable).parent / "uv"

PACKAGES = [
    "libs/events",
    "services/api-gateway",
    "services/scheduler",
    "services/dispatcher",
    "services/reporter",
    "tools/fake-provider",
    "tools/smsctl",
]

# Runtime dependencies that no module imports by name, each with the reason it is there.
USED_WITHOUT_IMPORT = {
    "python-dotenv": "pydantic-settings reads the env_file of every Settings with it",
    "psycopg": "yoyo's postgresql+psycopg:// driver for the migrations",
    "tzdata": "IANA zones for zoneinfo where the OS ships none (slim images)",
    "httptools": "uvicorn's HTTP parser",
    "python-multipart": "FastAPI parses the admin's form posts and uploads with it",
}


def _project(package: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _runtime(package: str) -> set[str]:
    return _names(_project(package).get("dependencies", []))


def _declared(package: str) -> set[str]:
    """Runtime dependencies and extras (sms_events.testing needs pytest only with [testing])."""
    extras = _project(package).get("optional-dependencies", {})
    return _runtime(package) | {n for reqs in extras.values() for n in _names(reqs)}


@cache
def _distributions() -> dict[str, set[str]]:
    """Import name -> distributions; the workspace's own come from their src (editable installs
    list no files for packages_distributions to read)."""
    found = {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in packages_distributions().items()
    }
    for package in PACKAGES:
        name = canonicalize_name(_project(package)["name"])
        for module in (ROOT / package / "src").iterdir():
            found[module.name] = {name}
    return found


def _imported_modules(package: str) -> dict[str, str]:
    """Top-level module imported by the package's src -> the first file importing it."""
    src = ROOT / package / "src"
    own = {p.name for p in src.iterdir()}
    found: dict[str, str] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names or top in own or top == "__future__":
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_imported_by_src_is_declared_in_its_pyproject(package: str) -> None:
    declared = _declared(package)
    missing = {}
    for module, where in _imported_modules(package).items():
        dists = _distributions().get(module)
        assert dists, f"{module} (imported in {where}) belongs to no installed distribution"
        if not dists & declared:
            missing[module] = where
    assert not missing, f"{package}/pyproject.toml does not declare: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_runtime_dependency_is_imported_or_says_why_not(package: str) -> None:
    imported = {d for m in _imported_modules(package) for d in _distributions().get(m, set())}
    unused = _runtime(package) - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"{package}: runtime dependencies nothing in src imports: {unused}"


def test_tenacity_is_the_one_retry_library_and_only_the_event_library_declares_it() -> None:
    # sms_events.retrying is every service's retry policy: the services get tenacity through
    # it, and declare no retry library of their own.
    for package in PACKAGES:
        runtime = _runtime(package)
        assert ("tenacity" in runtime) == (package == "libs/events"), package
        assert not runtime & {"backoff", "retrying", "stamina"}, package


def test_the_lock_covers_every_member_and_pins_every_file_by_hash() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    members = {canonicalize_name(_project(p)["name"]) for p in PACKAGES}
    assert set(lock["manifest"]["members"]) == members
    for package in lock["package"]:
        if "registry" not in package["source"]:
            assert canonicalize_name(package["name"]) in members, package["name"]
            continue
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files, package["name"]
        assert all(f["hash"].startswith("sha256:") for f in files), package["name"]


def test_services_resolve_sms_events_from_the_workspace() -> None:
    for package in PACKAGES:
        if "sms-events" in _runtime(package):
            pyproject = tomllib.loads((ROOT / package / "pyproject.toml").read_text())
            assert pyproject["tool"]["uv"]["sources"]["sms-events"] == {"workspace": True}


def test_the_lock_matches_every_pyproject() -> None:
    result = subprocess.run(
        [str(UV), "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"uv.lock is stale, run `make lock`:\n{result.stderr}"


# The services and the runtime modules each must import without any development tool around.
SERVICES = {
    "services/api-gateway": ("sms-api-gateway", "gateway.__main__"),
    "services/scheduler": ("sms-scheduler", "scheduler.__main__"),
    "services/dispatcher": ("sms-dispatcher", "dispatcher.__main__"),
    "services/reporter": ("sms-reporter", "reporter.__main__"),
    "tools/fake-provider": ("sms-fake-provider", "fake_provider.__main__"),
    "tools/smsctl": ("smsctl", "smsctl.cli"),
}


@pytest.mark.parametrize("package", SERVICES)
def test_each_service_installs_on_its_own_without_dev_tools(package: str, tmp_path: Path) -> None:
    name, module = SERVICES[package]
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    # Non-editable: the service and sms-events are built from their pyproject.toml, as an image
    # would install them; the wheels come from uv's cache that `make venv` filled.
    subprocess.run(
        [str(UV), "sync", "--frozen", "--package", name, "--no-dev", "--no-editable",
         "--python", sys.executable, "--quiet"],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([str(python), "-c", f"import {module}"], check=True, timeout=60)
    listed = subprocess.run(
        [str(UV), "pip", "list", "--python", str(python), "--format", "freeze"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    installed = {canonicalize_name(line.split("==")[0]) for line in listed.splitlines()}
    assert canonicalize_name(name) in installed
    assert not installed & {"pytest", "ruff", "mypy", "hypothesis"}, installed


def _audit_script() -> Any:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts" / "audit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registry() -> Iterator[Callable[[int, bytes], str]]:
    """A local HTTP server answering with the status and body the test sets."""
    answer: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answer["status"])
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(status: int, body: bytes) -> str:
        answer.update(status=status, body=body)
        return f"http://127.0.0.1:{server.server_address[1]}/pypi/pip/24.0/json"

    yield serve
    server.shutdown()
    server.server_close()


def test_the_audit_runs_only_where_the_advisory_api_answers(registry: Any) -> None:
    audit = _audit_script()
    assert audit.registry_answers(registry(200, b'{"info": {}, "vulnerabilities": []}'))
    # A mirror serving only the simple index: 404 on a release's document, or an HTML page.
    assert not audit.registry_answers(registry(404, b"not found"))
    assert not audit.registry_answers(registry(200, b"<html></html>"))
    assert not audit.registry_answers("http://127.0.0.1:9/", timeout=1)


def test_lint_skips_the_audit_with_a_message_and_make_audit_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = _audit_script()
    monkeypatch.setattr(audit, "registry_answers", lambda: False)
    assert audit.main(["--if-reachable"]) == 0
    assert "audit skipped" in capsys.readouterr().out
    assert audit.main([]) == 2
    assert "no audit" in capsys.readouterr().out


def test_make_lint_runs_the_audit() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") : makefile.index("\naudit:")]
    assert "scripts/audit.py --if-reachable" in lint
