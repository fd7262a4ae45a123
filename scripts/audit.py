"""make audit: every package pinned in uv.lock, checked by pip-audit against published advisories.

pip-audit asks the package registry's JSON API (`/pypi/<name>/<version>/json`, which lists the
advisories of a release) about each pinned version. Where that API does not answer (a machine
that reaches the registry only through a mirror of its simple index, or no network at all),
`--if-reachable` (what `make lint` passes) skips with a message instead of failing the lint;
`make audit` itself fails, since no audit took place.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A release's own document, the endpoint pip-audit reads (a mirror may serve only the project's).
PROBE_URL = "https://pypi.org/pypi/pip/24.0/json"


def registry_answers(url: str = PROBE_URL, timeout: float = 5.0) -> bool:
    """True when the API pip-audit uses answers with a release's advisories."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return "vulnerabilities" in json.load(response)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError):
        return False


def locked_requirements() -> str:
    """uv.lock as a hashed requirements file: every third-party package, dev group included."""
    return subprocess.run(
        [str(BIN / "uv"), "export", "--frozen", "--all-packages", "--no-emit-workspace",
         "--format", "requirements-txt", "--quiet"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--if-reachable", action="store_true", help="skip (exit 0) when the registry is silent"
    )
    args = parser.parse_args(argv)
    if not registry_answers():
        verdict = "audit skipped" if args.if_reachable else "no audit"
        print(f"{verdict}: the package registry's advisory API ({PROBE_URL}) does not answer")
        return 0 if args.if_reachable else 2
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write(locked_requirements())
        requirements.flush()
        command = [
            str(BIN / "pip-audit"),
            *("--requirement", requirements.name, "--require-hashes", "--disable-pip"),
            *("--vulnerability-service", "pypi", "--progress-spinner", "off"),
        ]
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
