"""Run the services as real processes: a supervisor that starts them with one environment,
prefixes or files their output, waits for them to answer and stops them all. `make run` runs
the platform with it (so it ships in the runtime package, not in ``sms_events.testing``); the
end-to-end tests start their systems with it too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["SERVICES", "ProcessGroup", "ServiceSpec", "free_port", "system_env", "wait_http_ok"]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    health_url_env: tuple[str, str]  # (env var holding the port, default port)


SERVICES = [
    ServiceSpec("api-gateway", "gateway", ("GATEWAY_PORT", "8000")),
    ServiceSpec("scheduler", "scheduler", ("SCHEDULER_HTTP_PORT", "8001")),
    ServiceSpec("dispatcher", "dispatcher", ("DISPATCHER_HTTP_PORT", "8002")),
    ServiceSpec("reporter", "reporter", ("REPORTER_HTTP_PORT", "8003")),
]


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def system_env(ports: Mapping[str, int], *, api_key: str, provider_token: str) -> dict[str, str]:
    """Environment wiring every service (and the fake provider) together on ``ports``
    (keyed by service name and ``fake-provider``): each one's port, the reporter's URL for
    the gateway, the provider's URL and token for the dispatcher."""
    return {
        "API_KEYS": api_key,
        # Both ends of the reporter's internal API (a test run's own, never a real secret).
        "INTERNAL_API_TOKEN": f"internal-{provider_token}-{'0' * 32}",
        "GATEWAY_PORT": str(ports["api-gateway"]),
        "SCHEDULER_HTTP_PORT": str(ports["scheduler"]),
        "DISPATCHER_HTTP_PORT": str(ports["dispatcher"]),
        "REPORTER_HTTP_PORT": str(ports["reporter"]),
        "REPORTER_URL": f"http://127.0.0.1:{ports['reporter']}",
        "FAKE_PROVIDER_PORT": str(ports["fake-provider"]),
        "FAKE_PROVIDER_TOKEN": provider_token,
        "SMS_API_URL": f"http://127.0.0.1:{ports['fake-provider']}",
        "SMS_API_TOKEN": provider_token,
        "LOG_FORMAT": "json",
    }


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None


@dataclass
class ProcessGroup:
    """Starts processes with a shared environment; their output goes to a log file each
    (tests) or to this process's stdout with a name prefix (`make run`)."""

    env: Mapping[str, str]
    log_dir: Path | None = None
    running: dict[str, _Running] = field(default_factory=dict)

    def start(self, name: str, args: list[str], extra_env: Mapping[str, str] | None = None) -> None:
        env = {**os.environ, **self.env, **(extra_env or {})}
        out: IO[bytes] | int
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("ab")
        else:
            out = subprocess.PIPE
        try:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy of the descriptor
        pump = None
        if out == subprocess.PIPE:
            pump = threading.Thread(target=_prefix_lines, args=(name, proc), daemon=True)
            pump.start()
        self.running[name] = _Running(proc, pump)

    def start_module(
        self, name: str, module: str, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.start(name, [sys.executable, "-m", module], extra_env)

    def signal(self, name: str, sig: int) -> None:
        proc = self.running[name].proc
        if proc.poll() is None:
            os.killpg(proc.pid, sig)

    def wait(self, name: str, timeout: float = 30) -> int:
        return self.running[name].proc.wait(timeout)

    def kill9(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.wait(name)

    def stop(self, name: str, timeout: float = 30) -> int | None:
        running = self.running.get(name)
        if running is None or running.proc.poll() is not None:
            return running.proc.returncode if running else None
        self.signal(name, signal.SIGTERM)
        try:
            return running.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(name, signal.SIGKILL)
            return running.proc.wait()

    def stop_all(self, timeout: float = 30) -> None:
        for name in list(self.running):
            if self.running[name].proc.poll() is None:
                self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in list(self.running):
            proc = self.running[name].proc
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
                proc.wait()

    def exited(self) -> dict[str, int]:
        return {n: r.proc.returncode for n, r in self.running.items() if r.proc.poll() is not None}

    def log(self, name: str) -> str:
        assert self.log_dir is not None
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_http_ok(url: str, timeout: float = 30.0, group: ProcessGroup | None = None) -> None:
    """Poll ``url`` until it answers 200, failing early if a process of ``group`` died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if group is not None and (dead := group.exited()):
            raise RuntimeError(f"processes exited while waiting for {url}: {dead}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


def _prefix_lines(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    prefix = f"{name:>12} | ".encode()
    for line in proc.stdout:
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()
