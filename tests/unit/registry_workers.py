"""Functions run in separate processes by the registry concurrency tests (importable by spawned workers)."""

from __future__ import annotations

from typing import Any


def warm_up() -> None:
    """Import what the workers need before the race starts, so the race is about the registry."""
    import mlflow  # noqa: F401

    import retrainer.register  # noqa: F401


def _params(params_file: str, registered_name: str):
    from retrainer.config import load_params

    params = load_params(params_file)
    return params.model_copy(update={"model": params.model.model_copy(update={"registered_name": registered_name})})


def register_worker(params_file: str, name: str, trained: dict, decision_path: str, barrier: Any) -> dict:
    from retrainer.evaluate import Decision
    from retrainer.register import register_model
    from retrainer.train import TrainedModel

    params = _params(params_file, name)
    decision = Decision.load(decision_path)
    barrier.wait(timeout=120)
    return register_model(params, TrainedModel.from_dict(trained), decision, {"run_type": "manual"}).to_dict()


def promote_worker(params_file: str, name: str, version: str, expected: str, barrier: Any) -> dict:
    from retrainer.errors import ChampionMoved
    from retrainer.register import promote_version

    params = _params(params_file, name)
    barrier.wait(timeout=120)
    try:
        # override: which version wins the first race is up to the scheduler of the OS, so a loser may be
        # older than the winner; the as-of guard would then refuse it before the check-and-set this tests.
        move = promote_version(
            params, version, "race test", by=f"worker-{version}", expected_champion=expected, override=True
        )
    except ChampionMoved as exc:
        return {"version": version, "moved": False, "error": str(exc)}
    return {"version": version, "moved": move.moved, "error": ""}
