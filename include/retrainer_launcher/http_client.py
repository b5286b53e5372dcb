"""A small JSON-over-HTTP client on the standard library, and polling until a condition holds.

The standard library rather than httpx or requests: ``make status`` asks the servers for their health
and must work without the venv (see the package docstring).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from retrainer_launcher.common import StackError
from retrainer_launcher.processes import Process, is_alive, tail


class HttpError(StackError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """One JSON request; the decoded JSON (or text) answer. HttpError on a status >= 400."""
    if not url.startswith(("http://", "https://")):
        raise StackError(f"refusing a non-HTTP URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only, checked above
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            raw = resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        raise HttpError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return raw


def reachable(probe: Callable[[], Any]) -> Any:
    """``probe()``, or None if the server is not up yet (refused, reset, timed out or 5xx)."""
    try:
        return probe()
    except HttpError as exc:
        if exc.status >= 500:
            return None
        raise
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 1.0,
    processes: Iterable[Process] = (),
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail early if one of ``processes`` died."""
    processes = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        for p in processes:
            if not is_alive(p.pid):
                raise StackError(
                    f"{p.name} (pid {p.pid}) exited while waiting for {what}; {p.log}:\n{tail(p.log)}"
                )
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.log}:\n{tail(p.log, 15)}" for p in processes)
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(interval)
