"""URLs into the Airflow UI and its plugins, from Airflow's ``[api]`` configuration (read when called)."""

from __future__ import annotations


def ui_base_url() -> str:
    """The Airflow UI's base URL, from [api] base_url (or host/port), without a trailing slash."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    if not base:
        host = conf.get("api", "host", fallback="localhost")
        base = f"http://{'localhost' if host in ('0.0.0.0', '') else host}:{conf.get('api', 'port', fallback='8080')}"  # noqa: S104
    return base.rstrip("/")


def link_base_url() -> str:
    """The prefix of links into the Airflow UI and its plugins: [api] base_url when it is set, else ""
    (a path on the server the user is on: host names such as localhost and 127.0.0.1 do not share the
    login cookie, so an absolute URL made from [api] host could land on a logged-out host)."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def run_ui_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, from [api] base_url (or host/port)."""
    from urllib.parse import quote

    return f"{ui_base_url()}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
