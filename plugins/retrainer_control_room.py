"""The control room: a "Retrainer" page in the Airflow navigation, a lineage panel on every DAG run, and
the reports behind the operators' extra links. A FastAPI app the Airflow api-server mounts at ``/retrainer``.

Routes (all under ``/retrainer``):

``GET /``                          the page: champion and challenger, drift chart, gate per day, quarantine, history
                                   (several models: the list of models, each row opening its page)
``GET /models/{model}``            one model's page; under it ``/reports/...``, ``/api/overview``, ``/api/replay``
                                   as below, for that model
``GET /runs/{dag_id}/{run_id}``    the lineage panel of one DAG run (the run's "Lineage" tab; the model from the id)
``GET /reports/{path}``            a file of the only model's reports folder (Data Docs, Evidently reports, JSON)
``GET /api/overview``, ``GET /api/models``, ``GET /api/runs/{dag_id}/{run_id}``   the same data as JSON
``POST /api/replay``               body ``{"day": "YYYY-MM-DD"}``: a `training` run for a quarantined day

Auth: Airflow does not protect plugin routes by itself. Every route except the nav icon resolves the
caller from the Airflow JWT (the UI's ``_token`` cookie, or an ``Authorization: Bearer`` header) through
the auth manager, and asks the auth manager for permission: reading needs GET on the DAG's runs (viewer
and up), replay needs POST on the model's `training` runs (user, op, admin with SimpleAuthManager). No token: 401;
an invalid token or a missing permission: 403. The replay itself goes through Airflow's REST API with the
caller's own token, so Airflow checks the permission a second time and records who started the run.
POST bodies must be JSON: a cross-site form cannot send them, and the cookie is SameSite=Lax.

Data comes from ``retrainer_ui_data`` (tested without Airflow), HTML from ``retrainer_ui_render`` (Jinja2
templates under ``templates/retrainer/``).
"""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any
from urllib.parse import quote, urlparse

import httpx
import retrainer_ui_data as ui_data
import retrainer_ui_models as ui_models
import retrainer_ui_render as render
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from retrainer_ui_data import URL_PREFIX

from retrainer.names import TRAINING_DAG, split_dag_id
from retrainer.names import dag_id as dag_of

log = logging.getLogger(__name__)
AIRFLOW_API_ENV = "RETRAINER_AIRFLOW_API_URL"  # where the plugin reaches the REST API (default: [api] host/port)
TOKEN_COOKIE = "_token"  # noqa: S105 - the name of Airflow's JWT cookie (base_auth_manager.COOKIE_NAME_JWT_TOKEN)

app = FastAPI(title="Retrainer control room", docs_url=None, redoc_url=None, openapi_url=None)


# --------------------------------------------------------------------------------------------------
# Who is asking, and may they
# --------------------------------------------------------------------------------------------------


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE)


async def current_user(request: Request) -> Any:
    """The Airflow user of the request's JWT (signature, expiry and revocation checked by the auth manager)."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    return await resolve_user_from_token(request_token(request))


User = Annotated[Any, Depends(current_user)]


def may(user: Any, method: str, dag_id: str = TRAINING_DAG) -> bool:
    """What the auth manager says about ``method`` on the DAG's runs (GET: look, POST: start one)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method=method, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        )
    )


def require(user: Any, method: str, dag_id: str = TRAINING_DAG) -> None:
    if not may(user, method, dag_id):
        what = "look at" if method == "GET" else "start"
        raise HTTPException(403, f"user {user.get_name()!r} may not {what} runs of DAG {dag_id!r}")


def _name(user: Any) -> str:
    return str(user.get_name())


# --------------------------------------------------------------------------------------------------
# Paths and the REST API
# --------------------------------------------------------------------------------------------------


def _prefix(request: Request) -> str:
    """Where this app is mounted, as the browser sees it (``/retrainer``, or ``/base/retrainer``)."""
    return str(request.scope.get("root_path", "") or URL_PREFIX).rstrip("/")


def _airflow_base(request: Request) -> str:
    prefix = _prefix(request)
    return prefix[: -len(URL_PREFIX)] if prefix.endswith(URL_PREFIX) else ""


def airflow_api_url() -> str:
    """The api-server's own address for REST calls made by this plugin."""
    explicit = os.environ.get(AIRFLOW_API_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/")
    from airflow.configuration import conf

    host = conf.get("api", "host", fallback="127.0.0.1") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping a bind-all address
    port = conf.get("api", "port", fallback="8080")
    path = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"http://{host}:{port}{path}"


def _rest(method: str, path: str, token: str | None, body: Any = None) -> Any:
    """One call of the REST API as the caller (their token): the decoded JSON answer.

    httpx.HTTPStatusError on a status >= 400 (the caller decides what it means); 502 when the API
    does not answer at all.
    """
    headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        answer = httpx.request(method, f"{airflow_api_url()}/api/v2/{path}", json=body, headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise HTTPException(502, f"the Airflow REST API did not answer: {exc}") from None
    answer.raise_for_status()
    return answer.json() if answer.content else None


def _refused(exc: httpx.HTTPStatusError, what: str, limit: int) -> HTTPException:
    """An HTTP error of this app for the REST API's refusal (its 4xx as is, anything else a 502)."""
    status = exc.response.status_code
    return HTTPException(status if 400 <= status < 500 else 502, f"{what}: {exc.response.text[:limit]}")


def _deployment():
    from retrainer_airflow.per_model import deployment

    return deployment()


def _params(model: str | None = None):
    """The params of ``model`` (None: the only one; a single params file's)."""
    from retrainer_airflow.tasks import model_params

    return model_params(model)


def _model(model: str) -> str:
    """A model of the deployment, else 404 (the name is never used to build a path before this check)."""
    from retrainer.config import ConfigError

    found = _deployment()
    if not found.multi or model not in found.names():
        raise HTTPException(404, f"no model {model!r} in this deployment")
    try:
        found.load(model)
    except ConfigError as exc:  # a broken model file has no page (and no DAGs) until it is fixed
        raise HTTPException(404, str(exc)) from None
    return model


def _model_prefix(request: Request, model: str | None) -> str:
    return f"{_prefix(request)}/models/{quote(model, safe='')}" if model else _prefix(request)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> Response:
    if _wants_html(request):
        login = f"{_airflow_base(request)}/auth/login/?next={quote(str(request.url), safe='')}" if exc.status_code == 401 else None
        title = {401: "Log in to Airflow first", 403: "Not allowed", 404: "Not found"}.get(exc.status_code, "Error")
        return HTMLResponse(render.message(title, str(exc.detail), login), status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
    return JSONResponse({"detail": f"bad request: {exc.errors()[:3]}"}, status_code=422)


# --------------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------------


@app.get("/icon.svg", include_in_schema=False)
def icon() -> Response:
    return Response(render.icon(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@app.get("/", response_class=HTMLResponse)
def control_room_page(request: Request, user: User) -> HTMLResponse:
    found = _deployment()
    if found.multi and len(found.names()) != 1:
        data = _models_overview(request, user)
        html = render.models_page(data, _prefix(request), _airflow_base(request), _name(user))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})
    return _model_page(request, user, None)


@app.get("/models/{model}", response_class=HTMLResponse)
@app.get("/models/{model}/", response_class=HTMLResponse, include_in_schema=False)
def model_page(model: str, request: Request, user: User) -> HTMLResponse:
    return _model_page(request, user, _model(model))


def _model_page(request: Request, user: Any, model: str | None) -> HTMLResponse:
    training = dag_of(TRAINING_DAG, model)
    require(user, "GET", training)
    data = ui_data.overview(_params(model), model=model)
    models_href = f"{_prefix(request)}/" if model else None
    html = render.control_room(data, _model_prefix(request, model), _airflow_base(request), _name(user),
                               may(user, "POST", training), models_href)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _models_overview(request: Request, user: Any) -> dict:
    """A row for every model whose runs the caller may look at (403 if none); the newest run of each
    training DAG from the REST API, as the caller."""
    found = _deployment()
    models, refused = found.load_all()
    models = {name: params for name, params in models.items() if may(user, "GET", dag_of(TRAINING_DAG, name))}
    if not models and not refused:
        raise HTTPException(403, f"user {user.get_name()!r} may not look at the runs of any model")
    last_runs = {}
    for name in models:
        training = dag_of(TRAINING_DAG, name)
        try:
            runs = _rest("GET", f"dags/{quote(training, safe='')}/dagRuns?order_by=-run_after&limit=1",
                         request_token(request))
            last_runs[training] = (runs.get("dag_runs") or [None])[0]
        except (httpx.HTTPError, ValueError) as exc:
            log.info("control room: no last run of %s: %s", training, exc)
    return ui_models.models_overview(models, last_runs, {str(k): v for k, v in refused.items()})


@app.get("/api/models")
def models_json(request: Request, user: User) -> JSONResponse:
    return JSONResponse(_models_overview(request, user), headers={"Cache-Control": "no-store"})


@app.get("/api/overview")
def overview_json(user: User) -> JSONResponse:
    return _overview_json(user, None)


@app.get("/models/{model}/api/overview")
def model_overview_json(model: str, user: User) -> JSONResponse:
    return _overview_json(user, _model(model))


def _overview_json(user: Any, model: str | None) -> JSONResponse:
    training = dag_of(TRAINING_DAG, model)
    require(user, "GET", training)
    data = ui_data.overview(_params(model), model=model)
    data["user"] = {"name": _name(user), "can_replay": may(user, "POST", training)}
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@app.get("/reports/{path:path}")
def report(path: str, user: User) -> FileResponse:
    return _report(path, user, None)


@app.get("/models/{model}/reports/{path:path}")
def model_report(model: str, path: str, user: User) -> FileResponse:
    return _report(path, user, _model(model))


def _report(path: str, user: Any, model: str | None) -> FileResponse:
    require(user, "GET", dag_of(TRAINING_DAG, model))
    try:
        found = ui_data.report_file(_params(model), path)
    except ui_data.ReportNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if found.suffix.lower() in (".html", ".htm", ".svg"):
        # Reports render data values: run them in an opaque origin, away from the Airflow session.
        headers["Content-Security-Policy"] = "sandbox allow-scripts allow-popups allow-forms allow-downloads"
    return FileResponse(found, headers=headers)


class ReplayBody(BaseModel):
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


@app.post("/api/replay")
def replay(body: ReplayBody, request: Request, user: User) -> JSONResponse:
    """Start a `training` run for a quarantined day through the REST API, as the caller."""
    return _replay(body, request, user, None)


@app.post("/models/{model}/api/replay")
def model_replay(model: str, body: ReplayBody, request: Request, user: User) -> JSONResponse:
    return _replay(body, request, user, _model(model))


def _replay(body: ReplayBody, request: Request, user: Any, model: str | None) -> JSONResponse:
    training = dag_of(TRAINING_DAG, model)
    require(user, "POST", training)
    try:
        planned = ui_data.replay_request(_params(model), body.day, _name(user), training)
    except ui_data.NotQuarantined as exc:
        raise HTTPException(404, str(exc)) from None
    dag_id, run_id = planned["dag_id"], planned["body"]["dag_run_id"]
    token = request_token(request)
    status = 201
    try:
        run = _rest("POST", f"dags/{dag_id}/dagRuns", token, planned["body"])
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise _refused(exc, "Airflow refused the run", 500) from None
        run, status = _rest("GET", f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", token), 409
    log.info("control room: %s replayed quarantined %s as %s/%s", _name(user), body.day, dag_id, run_id)
    return JSONResponse(
        {
            "dag_id": dag_id,
            "dag_run_id": run["dag_run_id"],
            "state": run.get("state"),
            "conf": run.get("conf"),
            "run_url": render.run_href(_airflow_base(request), dag_id, run["dag_run_id"]),
            "created": status == 201,
        },
        status_code=status,
    )


def _run_model(dag: str) -> str | None:
    """The model of a Retrainer DAG id (its ``__<name>`` suffix), checked against the deployment."""
    try:
        model = split_dag_id(dag)[1]
    except ValueError:
        raise HTTPException(404, f"not a Retrainer DAG: {dag!r}") from None
    return _model(model) if model else None


def _lineage(request: Request, user: Any, dag_id: str, run_id: str) -> dict:
    require(user, "GET", dag_id)
    model = _run_model(dag_id)
    try:
        run = _rest("GET", f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}", request_token(request))
    except httpx.HTTPStatusError as exc:
        raise _refused(exc, f"DAG run {dag_id}/{run_id}", 300) from None
    try:
        data = ui_data.run_lineage(_params(model), dag_id, run_id, ui_data.record_as_of(run))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    data["state"] = run.get("state")
    data["model_file"] = model  # the run's model of a models/ deployment ("model" is the version it registered)
    return data


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
def lineage_page(dag_id: str, run_id: str, request: Request, user: User) -> HTMLResponse:
    data = _lineage(request, user, dag_id, run_id)
    prefix = _model_prefix(request, data["model_file"])  # its report links: the model's reports
    return HTMLResponse(render.lineage(data, prefix, _airflow_base(request)), headers={"Cache-Control": "no-store"})


@app.get("/api/runs/{dag_id}/{run_id}")
def lineage_json(dag_id: str, run_id: str, request: Request, user: User) -> JSONResponse:
    return JSONResponse(_lineage(request, user, dag_id, run_id), headers={"Cache-Control": "no-store"})


class RetrainerControlRoomPlugin(AirflowPlugin):
    name = "retrainer_control_room"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Retrainer control room"}]
    external_views = [
        {
            "name": "Retrainer",
            "href": "retrainer/",
            "destination": "nav",
            "url_route": "retrainer",
            "icon": "/retrainer/icon.svg",
            "nav_top_level": True,
        },
        {
            "name": "Lineage",
            "href": "retrainer/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "retrainer-lineage",
        },
    ]
