"""Security checks on the production topology: logins are checked, MLflow refuses anonymous writes,
no secret leaks into logs, XCom or MLflow, and trigger inputs are checked before they are used."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from retrainer_launcher import airflow_api, http_client
from tests.conftest import AS_OF, REPO_ROOT
from tests.integration.conftest import Topology

pytestmark = pytest.mark.integration
DAG = "training"


def _status(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> int:
    try:
        http_client.http(method, url, body, headers=headers)
    except http_client.HttpError as exc:
        return exc.status
    return 200


def test_the_api_and_ui_refuse_anonymous_and_wrong_passwords(topology: Topology) -> None:
    api = topology.api
    for path in ("/api/v2/dags", "/api/v2/dags/training/dagRuns", "/api/v2/config", "/ui/dags", "/ui/config"):
        assert _status("GET", api + path) == 401, path
    assert _status("POST", f"{api}/api/v2/dags/{DAG}/dagRuns", {"logical_date": None}) == 401
    assert _status("POST", f"{api}/auth/token", {"username": "admin", "password": "wrong-password"}) == 401
    assert _status("POST", f"{api}/auth/token", {"username": "nobody", "password": "x"}) == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"}
    assert _status("GET", f"{api}/api/v2/dags", headers=forged) in (401, 403)
    basic = base64.b64encode(f"admin:{topology.variables['AIRFLOW_ADMIN_PASSWORD']}".encode()).decode()
    assert _status("GET", f"{api}/api/v2/dags", headers={"Authorization": f"Basic {basic}"}) == 401

    # Not everyone is admin: the viewer may look but not trigger.
    viewer = {"Authorization": f"Bearer {topology.token('viewer')}"}
    assert _status("GET", f"{api}/api/v2/dags", headers=viewer) == 200
    assert _status("POST", f"{api}/api/v2/dags/{DAG}/dagRuns", {"logical_date": None}, headers=viewer) == 403
    assert _status("PATCH", f"{api}/api/v2/dags/{DAG}?update_mask=is_paused", {"is_paused": True},
                   headers=viewer) == 403


def test_the_mlflow_server_refuses_anonymous_and_wrong_password_writes(topology: Topology) -> None:
    url = f"{topology.mlflow}/api/2.0/mlflow/experiments/create"
    wrong = base64.b64encode(b"admin:not-the-password").decode()
    assert _status("POST", url, {"name": "anonymous"}) == 401
    assert _status("POST", url, {"name": "anonymous"}, {"Authorization": f"Basic {wrong}"}) == 401
    assert _status("GET", f"{topology.mlflow}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    artifact = f"{topology.mlflow}/api/2.0/mlflow-artifacts/artifacts/anonymous.txt"
    assert _status("PUT", artifact, {"x": 1}) == 401
    assert airflow_api.mlflow_healthy(topology.mlflow)  # the health check stays open for probes
    # The server is the compose file's mlflow service, whose entrypoint enables the basic-auth app.
    serve = (REPO_ROOT / "deploy" / "mlflow" / "serve.sh").read_text()
    assert "exec mlflow server --app-name basic-auth" in serve


def test_trigger_inputs_with_sql_or_dotdot_are_refused(topology: Topology) -> None:
    token = topology.token()
    runs = f"{topology.api}/api/v2/dags/{DAG}/dagRuns"
    for conf, field in (
        ({"as_of": "2026-03-31'; DROP TABLE customer_events; --"}, "as_of"),
        ({"report": "../../../etc/passwd"}, "report"),
        ({"reason": "drift' OR '1'='1"}, "reason"),
    ):
        with pytest.raises(http_client.HttpError) as refused:
            airflow_api.trigger_run(topology.api, token, DAG, conf)
        assert refused.value.status == 400 and f"Invalid input for param {field}" in refused.value.body

    # A path without '..' passes the form but not the task: it must lie inside reports/.
    airflow_api.wait_for_dag(topology.api, token, DAG, timeout=180, out=lambda _: None)
    airflow_api.set_paused(topology.api, token, DAG, paused=False)  # DAGs start paused; this test may run alone
    run = airflow_api.trigger_run(topology.api, token, DAG, {"as_of": AS_OF.isoformat(), "report": "/etc/passwd"})
    ended = airflow_api.wait_for_run(topology.api, token, DAG, run["dag_run_id"], timeout=300, poll=3, out=lambda _: None)
    assert ended["state"] == "failed"
    (ingest,) = [ti for ti in airflow_api.task_instances(topology.api, token, DAG, run["dag_run_id"]) if ti["task_id"] == "ingest"]
    assert ingest["state"] == "failed" and ingest["try_number"] == 1  # refused at once, not retried
    log = airflow_api.task_log_tail(topology.api, token, DAG, run["dag_run_id"], ingest, lines=400)
    assert "report: '/etc/passwd' is outside the reports folder" in log
    assert http_client.http("GET", runs + "?limit=1", token=token)  # the API still answers


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


def test_no_secret_in_logs_xcom_or_mlflow(topology: Topology) -> None:
    secrets = topology.secrets()
    assert all(len(v) >= 16 for v in secrets.values())

    leaked_in_logs = {
        str(path): found
        for path in Path(topology.stack.home / "logs").rglob("*")
        if path.is_file() and (found := _leaks(path.read_text(errors="replace"), secrets))
    }
    assert not leaked_in_logs

    token = topology.token()
    answer = http_client.http("GET", f"{topology.api}/api/v2/dags/{DAG}/dagRuns?limit=100", token=token)
    trained = [r for r in answer["dag_runs"] if r["state"] == "success" and (r.get("conf") or {}).get("as_of")]
    if not trained:
        # Run alone (without test_distributed before it): make one model-making run to look into.
        airflow_api.set_paused(topology.api, token, DAG, paused=False)
        run = airflow_api.trigger_run(topology.api, token, DAG, {"as_of": AS_OF.isoformat()})
        ended = airflow_api.wait_for_run(topology.api, token, DAG, run["dag_run_id"], timeout=600, poll=3, out=lambda _: None)
        assert ended["state"] == "success", ended
        answer = http_client.http("GET", f"{topology.api}/api/v2/dags/{DAG}/dagRuns?limit=100", token=token)
    checked = 0
    for run in answer["dag_runs"]:
        rid = run["dag_run_id"]
        xcoms = http_client.http(
            "GET", f"{topology.api}/api/v2/dags/{DAG}/dagRuns/{urllib.parse.quote(rid, safe='')}"
            "/taskInstances/~/xcomEntries?limit=1000", token=token,
        )
        for entry in xcoms.get("xcom_entries", []):
            value = http_client.http(
                "GET",
                f"{topology.api}/api/v2/dags/{DAG}/dagRuns/{urllib.parse.quote(rid, safe='')}/taskInstances/"
                f"{entry['task_id']}/xcomEntries/{entry['key']}?map_index={entry.get('map_index', -1)}&stringify=true",
                token=token,
            )
            assert not _leaks(str(value), secrets), (rid, entry["task_id"])
            checked += 1
    assert checked >= 6

    from tests.integration.test_distributed import _mlflow_runs

    for run in _mlflow_runs(topology):
        assert not _leaks(str(run["data"]), secrets), run["info"]["run_id"]


def test_bandit_rules_are_clean() -> None:
    """`ruff --select S` (flake8-bandit); each exception in the code carries its reason."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "--select", "S", "--output-format", "concise", "."],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
