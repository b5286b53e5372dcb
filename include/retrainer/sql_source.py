"""The SQL source: an open connection and its reflected table, with errors that name the source.

Shared by ingest (the typed read of a day), unreadable (the text read of rows that do not fit their
types), suite_init, the CLI, scoring and the demo generator; the URL's password never reaches a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from retrainer.errors import SourceError


def masked_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported as such, never echoed with secrets
        return "<unparsable URL>"


@contextmanager
def source_table(url: str, table: str, action: str = "read") -> Iterator[tuple[Any, Any]]:
    """An open connection and the reflected ``table`` of the source at ``url``.

    The table name is reflected, never pasted into SQL; every SQLAlchemy failure becomes a SourceError
    that names the URL (password masked), the table and what was being done (``action``).
    """
    import sqlalchemy as sa

    where = masked_url(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        raise SourceError(f"source {where}: invalid URL ({exc})") from None
    try:
        with engine.connect() as conn:
            try:
                reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
            except sa.exc.NoSuchTableError:
                raise SourceError(f"source {where}: table {table!r} does not exist") from None
            yield conn, reflected
    except SourceError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise SourceError(f"source {where}: cannot {action} table {table!r}: {reason}") from None
    finally:
        engine.dispose()
