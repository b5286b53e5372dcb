"""The launcher's command line: the local stack behind ``make run`` / ``make stop``, or the production topology.

::

    python -m retrainer_launcher run      # up + trigger + wait + summary (what `make run` does)
    python -m retrainer_launcher up       # initialise, seed, start the processes, wait for health
    python -m retrainer_launcher trigger  # unpause `training` and trigger a run (as_of = today, UTC)
    python -m retrainer_launcher wait     # follow a run (the latest one by default) to its end
    python -m retrainer_launcher status   # which processes run, their health, URLs and login
    python -m retrainer_launcher down     # stop everything started (SIGTERM, then SIGKILL)
    python -m retrainer_launcher drift-demo  # inject drift after the champion's day and follow the reaction

With ``--distributed`` each command works on the production topology instead (``make up-distributed``):
the services of docker-compose.yaml as processes (:mod:`retrainer_launcher.distributed`).

``down`` and ``status`` need only the standard library, so they work without the venv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrainer_launcher.common import API_PORT, MLFLOW_PORT, StackError, say
from retrainer_launcher.demo import cmd_drift_demo
from retrainer_launcher.distributed import (
    DISTRIBUTED_HOME,
    TRIGGER_LOG_PORT,
    WORKER_LOG_PORTS,
    DistributedStack,
    cmd_up_distributed,
)
from retrainer_launcher.local import Stack, cmd_trigger, cmd_up, cmd_wait, default_home
from retrainer_launcher.processes import stop
from retrainer_launcher.summary import cmd_status, print_summary

COMMANDS = ("run", "up", "trigger", "wait", "status", "down", "drift-demo")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m retrainer_launcher", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: cwd)")
    p.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: <root>/.airflow)")
    p.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", API_PORT)))
    p.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", MLFLOW_PORT)))
    p.add_argument("--as-of", default=None, help="as-of date for the triggered run (default: today, UTC)")
    p.add_argument("--run-id", default=None, help="run to wait for (default: the latest)")
    p.add_argument("--no-seed", action="store_true", help="do not seed the demo source")
    p.add_argument("--dag-timeout", type=float, default=300.0, help="seconds to wait for the DAG to parse")
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds to wait for the run")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="the production topology of docker-compose.yaml on this machine's Postgres and Redis "
        f"(CeleryExecutor, two workers, MLflow server with basic auth; home <root>/{DISTRIBUTED_HOME})",
    )
    p.add_argument(
        "--worker-log-ports",
        default=os.environ.get("WORKER_LOG_PORTS", ",".join(map(str, WORKER_LOG_PORTS))),
        help="log server ports of the Celery workers, comma-separated (--distributed)",
    )
    p.add_argument(
        "--trigger-log-port", type=int, default=int(os.environ.get("TRIGGER_LOG_PORT", TRIGGER_LOG_PORT)),
        help="log server port of the triggerer (--distributed)",
    )
    return p


def make_stack(args: argparse.Namespace) -> tuple[Stack | DistributedStack, Callable[..., Any]]:
    """The stack the arguments name, and the function that brings it up."""
    root = args.root.resolve()
    if args.distributed:
        home = (args.home or root / DISTRIBUTED_HOME).resolve()
        ports = tuple(int(p) for p in args.worker_log_ports.split(",") if p.strip())
        stack = DistributedStack(
            root, home, args.api_port, args.mlflow_port, worker_log_ports=ports,
            trigger_log_port=args.trigger_log_port,
        )
        return stack, cmd_up_distributed
    return Stack(root, (args.home or default_home(root)).resolve(), args.api_port, args.mlflow_port), cmd_up


def _run(args: argparse.Namespace, stack: Stack | DistributedStack, up: Callable[..., Any]) -> int:
    """up + trigger + wait + summary: what `make run` does."""
    t0 = time.monotonic()
    up(stack, seed=not args.no_seed)
    runs = cmd_wait(stack, cmd_trigger(stack, args.as_of, args.dag_timeout), args.run_timeout)
    print_summary(stack, runs)
    say(f"{'make run-distributed' if args.distributed else 'make run'} took {time.monotonic() - t0:.0f}s")
    return 0 if all(run.get("state") == "success" for run in runs.values()) else 1


def _runs_named(stack: Stack | DistributedStack, run_id: str | None) -> dict[str, str | None]:
    """--run-id: that run of every model's training DAG; none: each one's latest."""
    from retrainer_launcher.models import stack_models, training_dag

    return {training_dag(name): run_id for name in stack_models(stack.params_path)}


def dispatch(args: argparse.Namespace, stack: Stack | DistributedStack, up: Callable[..., Any]) -> int:
    """Run ``args.command`` on ``stack``; the exit code."""
    if args.command == "down":
        stopped = stop(stack.home)
        say("stopped " + ", ".join(stopped) if stopped else "nothing was running")
        return 0
    if args.command == "status":
        return 0 if cmd_status(stack) else 1
    if args.command == "up":
        up(stack, seed=not args.no_seed)
        return 0
    if args.command == "trigger":
        cmd_trigger(stack, args.as_of, args.dag_timeout)
        return 0
    if args.command == "drift-demo":
        return 0 if cmd_drift_demo(stack, timeout=args.run_timeout) else 1
    if args.command == "wait":
        runs = cmd_wait(stack, _runs_named(stack, args.run_id), args.run_timeout)
        print_summary(stack, runs)
        return 0 if all(run.get("state") == "success" for run in runs.values()) else 1
    return _run(args, stack, up)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stack, up = make_stack(args)
    try:
        return dispatch(args, stack, up)
    except (StackError, subprocess.CalledProcessError, ValueError) as exc:  # ValueError: ConfigError
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the stack keeps running (stop with: make stop)", file=sys.stderr)
        return 130
