"""HTML of the control room: the "Retrainer" page and the lineage panel of a DAG run.

Jinja2 templates under ``templates/retrainer/`` (autoescape on: every value is escaped by Jinja) from
the data of ``retrainer_ui_data``, with inline CSS, inline SVG and a few lines of inline JavaScript:
nothing is fetched from a CDN (no internet here, nor in many clusters). No Airflow import, so the
rendering is tested on its own.

| template            | what                                                                      |
|---------------------|---------------------------------------------------------------------------|
| ``page.html``       | the frame of every page (``page.css``, ``page.js`` inlined)               |
| ``control_room.html`` | the page: model cards, drift chart, gate per day, quarantine, history   |
| ``lineage.html``    | the lineage panel of one DAG run                                          |
| ``message.html``    | an error page (with a login link for a 401)                               |
| ``macros.html``     | links, tables, section errors, failed-expectation chips                   |
| ``tables.html``     | gate decision, champion moves, gate per day, quarantine (one macro each)  |
| ``model_card.html`` | the card of the version behind an alias                                   |
| ``drift_chart.html`` | the SVG chart; its pixel geometry is :func:`drift_geometry`              |

The functions below render one macro each (the page composes the same macros), so each part is
tested on its own. Links: reports are served by the plugin (``<prefix>/reports/...``); Airflow pages
(a DAG run) are opened in the Airflow UI around the page's frame; MLflow links open in a new tab.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from retrainer.names import CHALLENGER, CHAMPION, TRAINING_DAG

TEMPLATES = Path(__file__).resolve().parent / "templates" / "retrainer"


def report_href(prefix: str, relative: str | None) -> str | None:
    return f"{prefix}/reports/{quote(relative, safe='/=')}" if relative else None


def run_href(airflow_base: str, dag_id: str, run_id: str | None) -> str | None:
    if not run_id:
        return None
    return f"{airflow_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def drift_geometry(drift: dict, width: int, height: int) -> dict[str, Any]:
    """Where the drift chart draws things: the plot's edges, the y of each tick and of the threshold,
    and per check its point (x, y) and whether its day is labelled (about ten labels, and the last)."""
    checks, threshold = drift["checks"], float(drift["threshold"])
    left, right, top, bottom = 44, 16, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(1.0, *(c["drifted_share"] for c in checks))
    n = len(checks)
    label_every = max(1, n // 10)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    return {
        "left": left, "right": width - right, "top": top, "bottom": top + plot_h,
        "ticks": [(tick, y(tick)) for tick in (0, 0.25, 0.5, 0.75, 1.0)],
        "threshold": threshold, "threshold_y": y(threshold),
        "points": [{"check": c, "x": x(i), "y": y(c["drifted_share"]), "label": i % label_every == 0 or i == n - 1}
                   for i, c in enumerate(checks)],
    }


def _num(value: Any, digits: int = 4) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,  # a missing value shows as nothing
        undefined=jinja2.Undefined,
    )
    env.filters["num"] = _num
    env.globals.update(report_href=report_href, run_href=run_href, drift_geometry=drift_geometry,
                       CHAMPION=CHAMPION, CHALLENGER=CHALLENGER, TRAINING_DAG=TRAINING_DAG)
    return env


def _macro(template: str, name: str, *args: Any) -> str:
    return str(getattr(environment().get_template(template).module, name)(*args))


def _page(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)


def decision_table(decision: dict | None) -> str:
    return _macro("tables.html", "decision_table", decision)


def model_card(card: dict | None, alias: str, airflow_base: str) -> str:
    return _macro("model_card.html", "model_card", card, alias, airflow_base)


def history_table(history: list[dict] | None, airflow_base: str) -> str:
    return _macro("tables.html", "history_table", history, airflow_base)


def gates_table(gates: list[dict] | None, prefix: str) -> str:
    return _macro("tables.html", "gates_table", gates, prefix)


def drift_chart(drift: dict | None, prefix: str, width: int = 900, height: int = 230) -> str:
    """Drifted share per checked day (dots link to the reports), the threshold line, and markers where a
    retrain was triggered. Inline SVG."""
    return _macro("drift_chart.html", "drift_chart", drift, prefix, width, height)


def quarantine_table(entries: list[dict] | None, prefix: str, can_replay: bool, airflow_base: str = "") -> str:
    return _macro("tables.html", "quarantine_table", entries, prefix, can_replay)


def control_room(data: dict, prefix: str, airflow_base: str, user: str, can_replay: bool,
                 models_href: str | None = None) -> str:
    """One model's page (``models_href``: the list of all models, when there are several)."""
    return _page("control_room.html", data=data, prefix=prefix, airflow_base=airflow_base, user=user,
                 can_replay=can_replay, models_href=models_href)


def models_page(data: dict, prefix: str, airflow_base: str, user: str) -> str:
    """The list of every model of the deployment, each row opening its page."""
    return _page("models.html", data=data, prefix=prefix, airflow_base=airflow_base, user=user)


def lineage(data: dict, prefix: str, airflow_base: str) -> str:
    """The lineage panel of one DAG run."""
    return _page("lineage.html", data=data, prefix=prefix, airflow_base=airflow_base)


def message(title: str, text: str, login: str | None = None) -> str:
    return _page("message.html", title=title, text=text, login=login)


def icon() -> str:
    """The navigation icon of the Retrainer page (static SVG)."""
    return (TEMPLATES / "icon.svg").read_text(encoding="utf-8")
