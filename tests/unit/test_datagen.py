"""Tests of the seeded churn data generator and the SQL source seeder."""

from __future__ import annotations

import os
import secrets
import sys
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pandas.testing import assert_frame_equal

from retrainer.datagen import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    COLUMNS,
    INT_FEATURES,
    NUMERIC_FEATURES,
    NUMERIC_RANGES,
    SCHEMA,
    UNSEEN_CATEGORY,
    DriftSpec,
    IncidentSpec,
    drift_factor,
    generate_day,
    generate_range,
    reference_std,
    seed_source,
)
from retrainer.errors import SourceError

DAY = date(2024, 3, 5)
SEED = 42


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_day(DAY, 20_000, SEED)


def _day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day)
    return start, start + pd.Timedelta(days=1)


# --- determinism ------------------------------------------------------------------------------


def test_same_inputs_give_equal_frames() -> None:
    assert_frame_equal(generate_day(DAY, 500, SEED), generate_day(DAY, 500, SEED))


def test_day_from_range_equals_day_alone() -> None:
    start, end = date(2024, 1, 30), date(2024, 2, 2)
    drift = DriftSpec(start=date(2024, 2, 1), kind="gradual", ramp_days=3)
    incidents = [IncidentSpec(date(2024, 2, 1), "nulls")]
    frame = generate_range(start, end, 300, SEED, drift, incidents)
    assert len(frame) == 4 * 300
    for offset in range(4):
        day = start + timedelta(days=offset)
        lo, hi = _day_bounds(day)
        part = frame[(frame.event_time >= lo) & (frame.event_time < hi)].reset_index(drop=True)
        assert_frame_equal(part, generate_day(day, 300, SEED, drift, incidents))


def test_seed_and_day_change_the_rows() -> None:
    base = generate_day(DAY, 200, SEED)
    assert not base.equals(generate_day(DAY, 200, SEED + 1))
    assert not base.customer_id.equals(generate_day(DAY + timedelta(days=1), 200, SEED).customer_id)


def test_datetime_day_is_treated_as_its_date() -> None:
    assert_frame_equal(generate_day(datetime(2024, 3, 5, 13, 0), 100, SEED), generate_day(DAY, 100, SEED))


# --- clean data -------------------------------------------------------------------------------


def test_schema_and_dtypes(clean: pd.DataFrame) -> None:
    assert tuple(clean.columns) == COLUMNS
    assert {c: str(t) for c, t in clean.dtypes.items()} == {
        c: ("string" if t == "string" else t) for c, t in SCHEMA.items()
    }
    assert len(clean) == 20_000
    assert clean.index.equals(pd.RangeIndex(20_000))


def test_keys_and_event_times(clean: pd.DataFrame) -> None:
    assert clean.customer_id.str.fullmatch(r"C\d{8}").all()
    assert clean.customer_id.is_unique
    lo, hi = _day_bounds(DAY)
    assert clean.event_time.between(lo, hi, inclusive="left").all()
    assert clean.event_time.is_monotonic_increasing
    # Spread over the whole day, not bunched.
    assert clean.event_time.dt.hour.nunique() == 24
    # Microsecond resolution, so SQL round trips are exact.
    assert (clean.event_time.astype("int64") % 1000 == 0).all()


def test_values_inside_ranges(clean: pd.DataFrame) -> None:
    for column, (lo, hi) in NUMERIC_RANGES.items():
        values = clean[column].dropna()
        assert values.min() >= lo, column
        if hi is not None:
            assert values.max() <= hi, column
    for column in CATEGORICAL_FEATURES:
        assert set(clean[column].unique()) == set(CATEGORIES[column]), column
    assert set(clean.churned.unique()) == {0, 1}


def test_total_charges_track_tenure_times_monthly(clean: pd.DataFrame) -> None:
    both = clean.dropna(subset=["total_charges"])
    expected = both.tenure_months * both.monthly_charges
    assert np.corrcoef(both.total_charges, expected)[0, 1] > 0.95
    assert (both.loc[both.tenure_months == 0, "total_charges"] == 0).all()


def test_missing_value_rates(clean: pd.DataFrame) -> None:
    rates = clean.isna().mean()
    assert 0.012 <= rates["total_charges"] <= 0.028
    assert 0.04 <= rates["satisfaction_score"] <= 0.06
    assert rates.drop(["total_charges", "satisfaction_score"]).eq(0).all()


def test_label_base_rate_and_plausible_correlations(clean: pd.DataFrame) -> None:
    assert 0.20 <= clean.churned.mean() <= 0.30
    by_contract = clean.groupby("contract_type").churned.mean()
    assert by_contract["month-to-month"] > by_contract["one-year"] > by_contract["two-year"]
    churners, stayers = clean[clean.churned == 1], clean[clean.churned == 0]
    assert churners.num_support_calls.mean() > stayers.num_support_calls.mean()
    assert churners.satisfaction_score.mean() < stayers.satisfaction_score.mean()
    assert churners.late_payments_12m.mean() > stayers.late_payments_12m.mean()
    assert churners.tenure_months.mean() < stayers.tenure_months.mean()
    assert churners.monthly_charges.mean() > stayers.monthly_charges.mean()


def test_gradient_boosting_reaches_the_intended_auc() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    frame = generate_range(date(2024, 1, 1), date(2024, 1, 10), 2_000, 7)
    features = frame[[*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]].copy()
    for column in CATEGORICAL_FEATURES:
        features[column] = features[column].astype("category")
    # Train on the first eight days, score the last two, as the pipeline does.
    train, test = slice(0, 16_000), slice(16_000, None)
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype",
        max_iter=60,
        learning_rate=0.15,
        early_stopping=False,
        random_state=0,
    )
    # One thread: OpenMP spinning on a busy shared machine makes the fit many times slower.
    with threadpool_limits(1):
        model.fit(features.iloc[train], frame.churned.iloc[train])
        auc = roc_auc_score(frame.churned.iloc[test], model.predict_proba(features.iloc[test])[:, 1])
    assert 0.75 <= auc <= 0.92


def test_zero_rows_keeps_the_schema() -> None:
    frame = generate_day(DAY, 0, SEED)
    assert len(frame) == 0
    assert tuple(frame.columns) == COLUMNS
    assert frame.dtypes.equals(generate_day(DAY, 1, SEED).dtypes)


@pytest.mark.parametrize("rows", [-1, 1.5, True])
def test_bad_row_counts_are_rejected(rows: object) -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_day(DAY, rows, SEED)  # type: ignore[arg-type]


def test_range_end_before_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="before start"):
        generate_range(DAY, DAY - timedelta(days=1), 10, SEED)


# --- drift ------------------------------------------------------------------------------------


def test_drift_factor() -> None:
    start = date(2024, 3, 1)
    abrupt = DriftSpec(start=start)
    gradual = DriftSpec(start=start, kind="gradual", ramp_days=4)
    assert drift_factor(None, start) == 0.0
    assert drift_factor(abrupt, start - timedelta(days=1)) == 0.0
    assert drift_factor(abrupt, start) == 1.0
    ramp = [drift_factor(gradual, start + timedelta(days=d)) for d in range(-1, 6)]
    assert ramp == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_abrupt_drift_shifts_means_from_the_start_day_only() -> None:
    start = date(2024, 3, 10)
    drift = DriftSpec(start=start, features=("monthly_charges", "num_support_calls", "contract_type"))
    std = reference_std()
    before = start - timedelta(days=1)
    assert_frame_equal(generate_day(before, 5_000, SEED, drift), generate_day(before, 5_000, SEED))
    for day in (start, start + timedelta(days=5)):
        clean, drifted = generate_day(day, 5_000, SEED), generate_day(day, 5_000, SEED, drift)
        shift = (drifted.monthly_charges.mean() - clean.monthly_charges.mean()) / std["monthly_charges"]
        assert 0.85 <= shift <= 1.05  # a little under 1: clipping at 150 eats part of it
        calls = (drifted.num_support_calls.mean() - clean.num_support_calls.mean()) / std["num_support_calls"]
        assert 0.8 <= calls <= 1.1
        assert drifted.monthly_charges.max() <= 150.0
        mtm = (drifted.contract_type == "month-to-month").mean()
        assert mtm > (clean.contract_type == "month-to-month").mean() + 0.1
        # Untouched features keep their distribution (the same random draws underneath).
        assert drifted.avg_session_minutes.equals(clean.avg_session_minutes)
        assert drifted.data_usage_gb.equals(clean.data_usage_gb)
        # Covariate drift moves the label through the unchanged label model.
        assert drifted.churned.mean() > clean.churned.mean()


def test_negative_magnitude_shifts_down() -> None:
    drift = DriftSpec(start=DAY, features=("tenure_months",), magnitude=-0.5)
    clean, drifted = generate_day(DAY, 5_000, SEED), generate_day(DAY, 5_000, SEED, drift)
    assert drifted.tenure_months.mean() < clean.tenure_months.mean() - 5
    assert drifted.tenure_months.min() >= 0


@pytest.mark.parametrize("feature", NUMERIC_FEATURES)
def test_every_numeric_feature_can_drift(feature: str) -> None:
    drift = DriftSpec(start=DAY, features=(feature,), magnitude=0.5)
    clean, drifted = generate_day(DAY, 3_000, SEED), generate_day(DAY, 3_000, SEED, drift)
    shift = (drifted[feature].mean() - clean[feature].mean()) / reference_std()[feature]
    assert 0.25 <= shift <= 0.6, shift
    assert drifted[feature].isna().mean() == pytest.approx(clean[feature].isna().mean())
    lo, hi = NUMERIC_RANGES[feature]
    assert drifted[feature].min() >= lo and (hi is None or drifted[feature].max() <= hi)


def test_gradual_drift_ramps() -> None:
    start = date(2024, 3, 10)
    drift = DriftSpec(start=start, kind="gradual", features=("monthly_charges",), magnitude=1.0, ramp_days=4)
    std = reference_std()["monthly_charges"]
    shifts = []
    for offset in range(-1, 6):
        day = start + timedelta(days=offset)
        clean, drifted = generate_day(day, 5_000, SEED), generate_day(day, 5_000, SEED, drift)
        shifts.append((drifted.monthly_charges.mean() - clean.monthly_charges.mean()) / std)
    assert shifts[0] == 0.0
    assert all(a < b for a, b in zip(shifts[:5], shifts[1:5], strict=False))
    assert shifts[1] == pytest.approx(0.25, abs=0.05)
    assert shifts[2] == pytest.approx(0.5, abs=0.06)
    assert shifts[4] == pytest.approx(shifts[5], abs=0.01) == pytest.approx(shifts[6], abs=0.01)


def test_concept_drift_changes_only_the_label_relationship() -> None:
    drift = DriftSpec(start=DAY, features=(), concept=True)
    clean, drifted = generate_day(DAY, 20_000, SEED), generate_day(DAY, 20_000, SEED, drift)
    assert_frame_equal(drifted.drop(columns="churned"), clean.drop(columns="churned"))
    assert not drifted.churned.equals(clean.churned)
    # Support calls stop predicting churn; price starts to matter more.
    assert drifted.churned.corr(drifted.num_support_calls) < clean.churned.corr(clean.num_support_calls) - 0.1
    assert drifted.churned.corr(drifted.monthly_charges) > clean.churned.corr(clean.monthly_charges) + 0.1


def test_drift_spec_validation() -> None:
    with pytest.raises(ValueError, match="not features"):
        DriftSpec(start=DAY, features=("nope",))
    with pytest.raises(ValueError, match="kind"):
        DriftSpec(start=DAY, kind="sudden")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ramp_days"):
        DriftSpec(start=DAY, kind="gradual", ramp_days=0)


# --- incidents --------------------------------------------------------------------------------

ROWS = 1_000


def _incident_frames(incident: IncidentSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_day(incident.day, ROWS, SEED), generate_day(
        incident.day, ROWS, SEED, incidents=[incident]
    )


ALL_KINDS = [
    "nulls",
    "out_of_range",
    "unseen_category",
    "duplicate_keys",
    "missing_column",
    "wrong_type",
    "future_timestamps",
    "outside_interval",
    "empty",
]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_incidents_touch_only_their_day(kind: str) -> None:
    incidents = [IncidentSpec(DAY, kind)]  # type: ignore[arg-type]
    for other in (DAY - timedelta(days=1), DAY + timedelta(days=1)):
        assert_frame_equal(
            generate_day(other, 300, SEED, incidents=incidents), generate_day(other, 300, SEED)
        )
    assert not generate_day(DAY, 300, SEED, incidents=incidents).equals(generate_day(DAY, 300, SEED))


def test_nulls_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "nulls", fraction=0.3))
    assert broken.monthly_charges.isna().sum() == 300
    assert clean.monthly_charges.isna().sum() == 0
    assert_frame_equal(broken.drop(columns="monthly_charges"), clean.drop(columns="monthly_charges"))
    ints = generate_day(DAY, ROWS, SEED, incidents=[IncidentSpec(DAY, "nulls", column="num_products")])
    assert ints.num_products.dtype == "float64" and ints.num_products.isna().sum() == 300
    cats = generate_day(
        DAY, ROWS, SEED, incidents=[IncidentSpec(DAY, "nulls", column="region", fraction=0.1)]
    )
    assert cats.region.dtype == "string" and cats.region.isna().sum() == 100


def test_out_of_range_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "out_of_range", fraction=0.2))
    assert broken.tenure_months.dtype == "int64"
    assert (broken.tenure_months < 0).sum() == 200
    floats = generate_day(
        DAY, ROWS, SEED, incidents=[IncidentSpec(DAY, "out_of_range", column="monthly_charges")]
    )
    assert (floats.monthly_charges < 15.0).sum() == 300


def test_unseen_category_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "unseen_category", fraction=0.1))
    assert (broken.region == "mars").sum() == 100
    assert set(broken.region.unique()) - set(CATEGORIES["region"]) == {UNSEEN_CATEGORY["region"]}


def test_duplicate_keys_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "duplicate_keys", fraction=0.1))
    assert len(broken) == ROWS
    assert clean.customer_id.is_unique
    assert broken.customer_id.duplicated().sum() >= 50
    assert set(broken.customer_id) <= set(clean.customer_id)


def test_missing_column_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "missing_column", column="satisfaction_score"))
    assert "satisfaction_score" not in broken.columns
    assert_frame_equal(broken, clean.drop(columns="satisfaction_score"))
    # A range with a narrower day still concatenates; the day's rows are NaN there.
    span = generate_range(
        DAY, DAY + timedelta(days=1), 10, SEED, incidents=[IncidentSpec(DAY, "missing_column")]
    )
    assert span.tenure_months.isna().sum() == 10


def test_wrong_type_incident() -> None:
    clean, broken = _incident_frames(IncidentSpec(DAY, "wrong_type", fraction=0.1))
    column = broken.total_charges
    assert column.dtype == object
    assert (column == "n/a").sum() == 100
    parsed = pd.to_numeric(column, errors="coerce")
    keep = column != "n/a"
    assert np.allclose(parsed[keep].dropna(), clean.total_charges[keep].dropna())
    assert {type(v) for v in column} <= {str, type(None)}  # writable to Parquet


def test_wrong_type_column_still_writes_to_parquet(tmp_path) -> None:
    _, broken = _incident_frames(IncidentSpec(DAY, "wrong_type"))
    broken.to_parquet(tmp_path / "day.parquet")
    assert pd.read_parquet(tmp_path / "day.parquet").total_charges.dtype == object


def test_timestamp_incidents() -> None:
    lo, hi = _day_bounds(DAY)
    _, future = _incident_frames(IncidentSpec(DAY, "future_timestamps", fraction=0.05))
    assert (future.event_time >= lo + pd.Timedelta(days=365)).sum() == 50
    assert future.event_time.between(lo, hi, inclusive="left").sum() == ROWS - 50
    _, early = _incident_frames(IncidentSpec(DAY, "outside_interval", fraction=0.05))
    outside = early.event_time[early.event_time < lo]
    assert len(outside) == 50
    assert (outside >= lo - pd.Timedelta(days=6)).all()


def test_empty_incident() -> None:
    _, broken = _incident_frames(IncidentSpec(DAY, "empty"))
    assert len(broken) == 0
    assert tuple(broken.columns) == COLUMNS


def test_incident_fraction_rounds_to_at_least_one_row() -> None:
    broken = generate_day(DAY, 10, SEED, incidents=[IncidentSpec(DAY, "nulls", fraction=0.001)])
    assert broken.monthly_charges.isna().sum() == 1


def test_incidents_apply_in_order_and_leave_other_streams_alone() -> None:
    nulls = IncidentSpec(DAY, "nulls", column="data_usage_gb")
    both = generate_day(DAY, ROWS, SEED, incidents=[nulls, IncidentSpec(DAY, "unseen_category")])
    alone = generate_day(DAY, ROWS, SEED, incidents=[nulls])
    assert both.data_usage_gb.isna().equals(alone.data_usage_gb.isna())


def test_incident_spec_validation() -> None:
    with pytest.raises(ValueError, match="cannot apply"):
        IncidentSpec(DAY, "unseen_category", column="tenure_months")
    with pytest.raises(ValueError, match="cannot apply"):
        IncidentSpec(DAY, "out_of_range", column="region")
    with pytest.raises(ValueError, match="fraction"):
        IncidentSpec(DAY, "nulls", fraction=0.0)
    with pytest.raises(ValueError, match="kind"):
        IncidentSpec(DAY, "meteor")  # type: ignore[arg-type]
    assert IncidentSpec(DAY, "wrong_type").resolved_column == "total_charges"


def test_incident_on_a_dropped_column_is_an_error() -> None:
    incidents = [IncidentSpec(DAY, "missing_column", column="region"), IncidentSpec(DAY, "unseen_category")]
    with pytest.raises(ValueError, match="not in the frame"):
        generate_day(DAY, 100, SEED, incidents=incidents)


# --- seed_source ------------------------------------------------------------------------------


def _read(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_table(table, conn)
    finally:
        engine.dispose()


def test_seed_source_round_trip_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'source.db'}"
    start, end = date(2024, 1, 1), date(2024, 1, 5)
    written = seed_source(url, "customer_events", start, end, 400, SEED, chunk_rows=300)
    assert written == 5 * 400
    back = _read(url, "customer_events").sort_values(["event_time", "customer_id"], ignore_index=True)
    expected = generate_range(start, end, 400, SEED).sort_values(
        ["event_time", "customer_id"], ignore_index=True
    )
    assert list(back.columns) == list(COLUMNS)
    assert_frame_equal(back, expected, check_dtype=False)
    for column in INT_FEATURES:
        assert back[column].dtype == "int64"

    inspector = sa.inspect(sa.create_engine(url))
    assert [ix["column_names"] for ix in inspector.get_indexes("customer_events")] == [["event_time"]]
    types = {c["name"]: type(c["type"]) for c in inspector.get_columns("customer_events")}
    assert issubclass(types["event_time"], sa.DateTime)
    assert issubclass(types["tenure_months"], sa.Integer)
    assert issubclass(types["monthly_charges"], sa.Float)
    assert issubclass(types["region"], sa.String)


def test_seed_source_is_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed_source(url, "events", date(2024, 1, 1), date(2024, 1, 10), 200, SEED)
    first = _read(url, "events")
    # Re-seeding an overlapping range replaces it; days outside it stay as they were.
    seed_source(url, "events", date(2024, 1, 4), date(2024, 1, 6), 200, SEED)
    seed_source(url, "events", date(2024, 1, 4), date(2024, 1, 6), 200, SEED)
    again = _read(url, "events")
    assert len(again) == 10 * 200
    key = ["event_time", "customer_id"]
    assert_frame_equal(again.sort_values(key, ignore_index=True), first.sort_values(key, ignore_index=True))
    # A different seed for the middle days replaces exactly those rows.
    seed_source(url, "events", date(2024, 1, 4), date(2024, 1, 6), 50, SEED + 1)
    assert len(_read(url, "events")) == 7 * 200 + 3 * 50


def test_seed_source_incidents_in_sql(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    d1, d2, d3, d4 = (date(2024, 1, d) for d in (1, 2, 3, 4))
    incidents = [
        IncidentSpec(d1, "outside_interval", fraction=0.05),
        IncidentSpec(d2, "future_timestamps", fraction=0.05),
        IncidentSpec(d3, "missing_column", column="satisfaction_score"),
        IncidentSpec(d4, "wrong_type", fraction=0.1),
    ]
    for _ in range(2):  # incidents that push rows outside the range must not duplicate them either
        assert seed_source(url, "events", d1, d4, 200, SEED, incidents=incidents) == 800
    back = _read(url, "events")
    assert len(back) == 800
    day = back.event_time.dt.normalize()
    assert back.satisfaction_score[day == pd.Timestamp(d3)].isna().all()
    assert back.satisfaction_score[day != pd.Timestamp(d3)].notna().mean() > 0.9
    assert back.total_charges[day == pd.Timestamp(d4)].isna().sum() >= 20  # "n/a" cells became NULL
    assert (back.event_time < pd.Timestamp(d1)).sum() == 10
    assert (back.event_time > pd.Timestamp(2025, 1, 1)).sum() == 10


def test_unreachable_url_error_masks_the_password() -> None:
    url = "postgresql://u:secret@127.0.0.1:1/db"
    with pytest.raises(SourceError) as caught:
        seed_source(url, "events", DAY, DAY, 10, SEED)
    message = str(caught.value)
    assert "secret" not in message
    assert "***" in message
    assert "127.0.0.1:1/db" in message


def test_unopenable_sqlite_file_is_a_source_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SourceError, match="folder"):
        seed_source(f"sqlite:///{blocker}/sub/x.db", "events", DAY, DAY, 10, SEED)


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def _postgres_unavailable() -> str | None:
    """Why this machine cannot run the Postgres test (trust auth on 127.0.0.1:5432), or None."""
    try:
        import psycopg
    except ImportError:
        return "the psycopg driver is not installed"
    try:
        psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_HOST}:{PG_PORT} as {PG_USER} ({str(exc).strip().splitlines()[0]})"
    return None


def _admin(statement) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(statement)


def _require_postgres() -> None:
    """Skip loudly with the reason when PostgreSQL is missing; under CI=true fail instead (never skip)."""
    problem = _postgres_unavailable()
    if problem is None:
        return
    message = f"POSTGRES DATAGEN TEST NOT RUN: {problem}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: PostgreSQL must be there)", pytrace=False)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database of its own on the local PostgreSQL (trust auth), dropped afterwards."""
    _require_postgres()
    from psycopg import sql

    name = f"retrainer_datagen_{secrets.token_hex(4)}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_missing_postgres_fails_under_ci_and_skips_loudly_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PG_PORT", 1)  # nothing listens there
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="POSTGRES DATAGEN TEST NOT RUN: no PostgreSQL at 127.0.0.1:1"):
        _require_postgres()
    monkeypatch.delenv("CI")
    with pytest.warns(UserWarning, match="NOT RUN"), pytest.raises(pytest.skip.Exception, match="127.0.0.1:1"):
        _require_postgres()


def test_seed_source_round_trip_postgres(postgres_url: str) -> None:
    import importlib.util

    driver = "psycopg2" if importlib.util.find_spec("psycopg2") else "psycopg"
    read_url = postgres_url.replace("postgresql://", f"postgresql+{driver}://")
    table = "datagen_unit_test"
    for _ in range(2):
        assert seed_source(postgres_url, table, date(2024, 1, 1), date(2024, 1, 3), 300, SEED) == 900
    back = _read(read_url, table)
    assert len(back) == 900
    expected = generate_range(date(2024, 1, 1), date(2024, 1, 3), 300, SEED)
    key = ["event_time", "customer_id"]
    assert_frame_equal(
        back.sort_values(key, ignore_index=True),
        expected.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
