"""Failure notifications: one JSON message per failed task, to the log and optionally to a webhook."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

MAX_MESSAGE = 4000  # webhooks (Slack, Teams, ...) reject or truncate very long bodies


def failure_payload(dag_id: str, run_id: str, task_id: str, try_number: Any, as_of: str | None, error: str) -> dict:
    """What a person needs to act: where it failed, for which date, and the error text (gate messages name the report)."""
    text = error if len(error) <= MAX_MESSAGE else error[: MAX_MESSAGE - 20] + "\n…(truncated)"
    return {
        "text": f"Retrainer: {dag_id}.{task_id} failed for as_of={as_of or '?'} (run {run_id}, try {try_number})\n{text}",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "as_of": as_of,
        "error": text,
    }


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST ``payload`` to ``url``; returns the HTTP status. Errors are raised with the URL named."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s), got {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.URLError as exc:
        raise ConnectionError(f"webhook {url}: {getattr(exc, 'reason', exc)}") from None
