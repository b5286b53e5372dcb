"""retrainer_launcher.demo: the demo source's emptiness check."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer_launcher import demo


def test_source_is_empty(tmp_path: Path) -> None:
    sa = pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'source.db'}"
    assert demo.source_is_empty(url, "events")  # no file
    assert not (tmp_path / "source.db").exists()  # and the check did not create it

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE other (x INTEGER)"))
    assert demo.source_is_empty(url, "events")  # no table
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (x INTEGER)"))
    assert demo.source_is_empty(url, "events")  # no rows
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events VALUES (1)"))
    assert not demo.source_is_empty(url, "events")
    engine.dispose()
