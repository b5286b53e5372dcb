"""retrainer.scoring without a model: which partitions may be scored, and the predictions table."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer.config import load_params
from retrainer.scoring import partition_status, predictions_table, write_predictions_sql
from retrainer.storage import partition_dir, partition_file, write_json_atomic
from tests.conftest import AS_OF


@pytest.fixture
def params(make_project):
    return load_params(make_project())


def _report(params, day, success: bool) -> None:
    write_json_atomic(params.reports_dir / "validation" / f"dt={day.isoformat()}" / "validation.json",
                      {"success": success})


def test_a_partition_is_scored_only_when_validated_and_in_the_training_area(params) -> None:
    assert partition_status(params, AS_OF) == "missing"
    raw = partition_file(params.data_dir, AS_OF)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"PAR1")
    assert partition_status(params, AS_OF) == "unvalidated"
    _report(params, AS_OF, success=False)
    assert partition_status(params, AS_OF) == "failed_validation"
    _report(params, AS_OF, success=True)
    assert partition_status(params, AS_OF) == "ready"
    day = AS_OF - timedelta(days=1)
    partition_dir(params.data_dir, day, area="quarantine").mkdir(parents=True)
    assert partition_status(params, day) == "quarantined"


def _predictions(version: int, rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "scored_day": [AS_OF] * rows,
        "entity_id": [f"c{i}" for i in range(rows)],
        "event_time": pd.date_range("2026-03-31", periods=rows, freq="min", tz="UTC"),
        "model_name": ["churn"] * rows,
        "model_version": [version] * rows,
        "model_role": ["champion"] * rows,
        "score": [0.25] * rows,
        "prediction": [0] * rows,
        "label": [1.0, float("nan")] * (rows // 2),
        "scoring_run": ["r1"] * rows,
    })


def test_a_rerun_replaces_its_days_rows_of_that_version_only(params) -> None:
    frame = _predictions(3, 10).assign(model_name=params.model.registered_name)
    assert write_predictions_sql(params, frame, AS_OF, 3) == {"deleted": 0, "inserted": 10}
    other = _predictions(4, 4).assign(model_name=params.model.registered_name)
    assert write_predictions_sql(params, other, AS_OF, 4) == {"deleted": 0, "inserted": 4}
    assert write_predictions_sql(params, frame.head(6), AS_OF, 3) == {"deleted": 10, "inserted": 6}
    engine = sa.create_engine(params.scoring_url)
    table = predictions_table(params.scoring.table)
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(table.c.model_version, sa.func.count()).group_by(table.c.model_version)).all())
        labels = [row.label for row in conn.execute(sa.select(table.c.label).where(table.c.model_version == 3))]
    engine.dispose()
    assert counts == {3: 6, 4: 4}
    assert labels.count(None) == 3 and labels.count(1) == 3  # a missing label is stored as NULL, not NaN


def test_readiness_skips_quarantined_and_failed_days_and_defaults_shadow(make_project):
    import json

    from retrainer.scoring import readiness
    from retrainer.storage import partition_dir, partition_file

    params = load_params(make_project({"scoring": {"shadow": True}}))
    day = AS_OF
    assert readiness(params, day) == {"day": "2026-03-31", "status": "missing", "ready": False, "skip": "",
                                      "shadow": True}
    partition_dir(params.data_dir, day, area="quarantine").mkdir(parents=True)
    assert readiness(params, day, False)["skip"] == "partition dt=2026-03-31 is quarantined: not scored"
    raw = partition_file(params.data_dir, day)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"")
    report = params.reports_dir / "validation" / "dt=2026-03-31" / "validation.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"success": False}))
    assert readiness(params, day)["skip"] == "partition dt=2026-03-31 is failed_validation: not scored"
    report.write_text(json.dumps({"success": True}))
    assert readiness(params, day, False) == {"day": "2026-03-31", "status": "ready", "ready": True, "skip": "",
                                             "shadow": False}


def test_quarantined_and_unreadable_days_are_never_scored_and_the_refusal_says_why(make_project):
    """Through the real pipeline: a day that failed its gate and a day whose rows could not be read are
    quarantined; batch scoring skips both, naming the kind of quarantine and the failures, and writes
    nothing for them; the good day is scored by the champion trained without them."""
    from retrainer.datagen import IncidentSpec
    from retrainer.errors import GateFailed, PartitionNotReady
    from retrainer.pipeline import run_pipeline
    from retrainer.scoring import day_dir, readiness, score_day, score_partition
    from tests.conftest import seed
    from tests.unit.test_quarantine import _set_on_day

    params = load_params(make_project())
    gate_day, unreadable_day = AS_OF - timedelta(days=2), AS_OF - timedelta(days=1)
    seed(params.source_file, incidents=[IncidentSpec(day=gate_day, kind="out_of_range")])
    _set_on_day(params, "monthly_charges", "12,5", unreadable_day, 3)
    for day in (gate_day, unreadable_day):
        with pytest.raises(GateFailed):
            run_pipeline(params, day)
    run_pipeline(params, AS_OF)  # the champion, trained on the window without the two days

    for day, kind, failure in ((gate_day, "gate", "tenure_months"), (unreadable_day, "unreadable", "monthly_charges")):
        ready = readiness(params, day)
        assert ready["status"] == "quarantined" and not ready["ready"]
        assert ready["skip"].startswith(f"partition dt={day.isoformat()} is quarantined ({kind}: "), ready["skip"]
        assert failure in ready["skip"] and ready["skip"].endswith(": not scored")
        with pytest.raises(PartitionNotReady, match=rf"dt={day.isoformat()} is quarantined \({kind}: .*{failure}"):
            score_partition(params, day)
        assert not day_dir(params, day).exists()
    scored = score_day(params, AS_OF, shadow=False)
    assert scored["champion"]["rows"] == 300 and scored["champion"]["version"] == "1"
