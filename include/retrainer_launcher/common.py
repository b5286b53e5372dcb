"""What every part of the launcher shares: its error, its output callback, default ports and host."""

from __future__ import annotations

from collections.abc import Callable

API_PORT = 8080
MLFLOW_PORT = 5000
# Every server of a stack on this machine listens on the loopback interface only.
BIND_HOST = "127.0.0.1"

# Where progress goes: print by default, a list's append (or a no-op) in tests.
Out = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started, reached or driven; the message says what to look at."""


def say(msg: str) -> None:
    print(msg, flush=True)
