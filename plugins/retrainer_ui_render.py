"""HTML of the control room: the "Retrainer" page and the lineage panel of a DAG run.

Pure functions from the data of ``retrainer.control_room`` to HTML strings, with inline CSS, inline SVG
and a few lines of inline JavaScript: nothing is fetched from a CDN (no internet here, nor in many
clusters). Every value is escaped. No Airflow import, so the rendering is tested on its own.

Links: reports are served by the plugin (``<prefix>/reports/...``); Airflow pages (a DAG run) are
opened in the Airflow UI around the page's frame; MLflow links open in a new tab.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STATUS_LABELS = {"pass": "pass", "warn": "warn", "fail": "fail"}

CSS = """
:root{--fg:#1a202c;--muted:#5f6b7a;--bg:#fff;--panel:#f7f9fb;--line:#e2e8f0;--accent:#017cee;
--ok:#2f855a;--ok-bg:#e6f4ea;--warn:#b7791f;--warn-bg:#fdf3dc;--bad:#c53030;--bad-bg:#fde8e8;--chip:#edf2f7}
@media (prefers-color-scheme:dark){:root{--fg:#e2e8f0;--muted:#a0aec0;--bg:#1a202c;--panel:#232b38;
--line:#3a4557;--accent:#63b3ed;--ok:#68d391;--ok-bg:#1f3a2b;--warn:#f6e05e;--warn-bg:#3d3420;--bad:#fc8181;
--bad-bg:#422222;--chip:#2d3748}}
*{box-sizing:border-box}body{margin:0;padding:20px 24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:26px 0 10px;text-transform:uppercase;
letter-spacing:.04em;color:var(--muted)}h3{font-size:15px;margin:0 0 6px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.sub{color:var(--muted);margin:0 0 12px}.muted{color:var(--muted)}.mono{font-family:ui-monospace,
SFMono-Regular,Menlo,monospace;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:14px 16px;background:var(--panel)}
.big{font-size:28px;font-weight:600;margin-right:8px}.kv{display:grid;grid-template-columns:150px 1fr;
gap:3px 10px;margin:10px 0}.kv dt{color:var(--muted)}.kv dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 8px;
border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600;
background:var(--panel)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
background:var(--chip)}
.pass,.ok{color:var(--ok);background:var(--ok-bg)}.warn{color:var(--warn);background:var(--warn-bg)}
.fail,.bad{color:var(--bad);background:var(--bad-bg)}
.chip{display:inline-block;padding:0 6px;margin:1px 2px;border-radius:4px;background:var(--chip);
font-size:12px}
.err{border:1px solid var(--bad);color:var(--bad);background:var(--bad-bg);padding:8px 10px;border-radius:6px}
.empty{color:var(--muted);font-style:italic}
button{font:inherit;padding:4px 12px;border-radius:6px;border:1px solid var(--accent);color:#fff;
background:var(--accent);cursor:pointer}button[disabled]{opacity:.45;cursor:not-allowed}
.replay-status{margin-left:8px}.chart{width:100%;max-width:980px;height:auto}
.chart text{fill:var(--muted);font-size:11px}.legend span{margin-right:14px}
.decision td:last-child{font-weight:600}
"""

# Airflow pages open in the Airflow UI around this frame (its router follows history changes); MLflow
# opens in a new tab; without a frame (the page opened on its own) links behave as usual.
SCRIPT = """
(function(){
  function inFrame(){try{return window.top!==window&&window.top.location.origin===location.origin}catch(e){return false}}
  document.addEventListener('click',function(ev){
    var a=ev.target.closest('a[data-airflow]');
    if(a&&inFrame()){ev.preventDefault();window.top.history.pushState({},'',a.getAttribute('href'));
      window.top.dispatchEvent(new PopStateEvent('popstate',{state:{}}));return}
    var x=ev.target.closest('a[data-external]');
    if(x&&inFrame()){ev.preventDefault();window.top.open(x.href,'_blank','noopener')}
  });
  document.querySelectorAll('button[data-replay]').forEach(function(btn){
    btn.addEventListener('click',function(){
      var out=btn.parentNode.querySelector('.replay-status');
      btn.disabled=true;out.textContent='creating the run...';
      fetch(btn.dataset.endpoint,{method:'POST',credentials:'same-origin',
        headers:{'Content-Type':'application/json'},body:JSON.stringify({day:btn.dataset.replay})})
      .then(function(r){return r.json().then(function(b){return {status:r.status,body:b}})})
      .then(function(res){
        var b=res.body||{};
        if(res.status<300||res.status===409){
          out.innerHTML='';var link=document.createElement('a');link.href=b.run_url;link.dataset.airflow='1';
          link.textContent=b.dag_run_id;link.className='replay-run';
          out.append(res.status===409?'already replayed: run ':'created run ',link,
            ' ('+(b.state||'queued')+')');
        }else{btn.disabled=false;out.textContent='refused: '+(b.detail||res.status)}
      }).catch(function(e){btn.disabled=false;out.textContent='error: '+e});
    });
  });
})();
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _a(href: str | None, text: str, kind: str = "", cls: str = "") -> str:
    """A link; kind ``airflow`` (an Airflow page) or ``external`` (another site) picks how it opens."""
    if not href:
        return ""
    attrs = {"airflow": " data-airflow=\"1\"", "external": " data-external=\"1\" target=\"_blank\" rel=\"noopener\""}
    css = f' class="{_e(cls)}"' if cls else ""
    return f'<a href="{_e(href)}"{attrs.get(kind, "")}{css}>{_e(text)}</a>'


def report_href(prefix: str, relative: str | None) -> str | None:
    return f"{prefix}/reports/{quote(relative, safe='/=')}" if relative else None


def run_href(airflow_base: str, dag_id: str, run_id: str | None) -> str | None:
    if not run_id:
        return None
    return f"{airflow_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}"
        f"<script>{SCRIPT}</script></body></html>"
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """``rows`` are HTML already (escape cell text with _e)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    css = f' class="{cls}"' if cls else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _error(errors: dict, name: str) -> str:
    return f'<p class="err">could not read this section: {_e(errors[name])}</p>' if name in errors else ""


def decision_table(decision: dict | None) -> str:
    if not decision:
        return '<p class="empty">no gate decision recorded</p>'
    rows = []
    for row in decision["rows"]:
        cells = [_e(c) for c in row]
        result = row[-1]
        css = "ok" if result in ("pass",) else "bad" if result in ("FAIL", "no") else ""
        cells[-1] = f'<span class="badge {css}">{_e(result)}</span>' if css else _e(result)
        rows.append(cells)
    verdict_css = "ok" if decision.get("promote") else ("warn" if decision.get("passed") else "bad")
    reasons = "".join(f"<li>{_e(r)}</li>" for r in decision.get("reasons") or [])
    return (
        _table(decision["header"], rows, "decision")
        + f'<p><span class="badge {verdict_css}">{_e(decision["verdict"])}</span></p>'
        + (f'<ul class="muted">{reasons}</ul>' if reasons else "")
    )


def model_card(card: dict | None, alias: str, airflow_base: str) -> str:
    if card is None:
        return f'<div class="card"><h3>{_e(alias.title())}</h3><p class="empty">no {_e(alias)} yet</p></div>'
    train, holdout = card["train_days"], card["holdout_days"]
    trained_on = (
        f'{_e(train["first"])} .. {_e(train["last"])} ({train["count"]} days)' if train["count"] else "-"
    )
    held = f'{_e(holdout["first"])} .. {_e(holdout["last"])} ({holdout["count"]} days)' if holdout["count"] else "-"
    by = card["trained_by"]
    run_link = _a(run_href(airflow_base, by["dag_id"], by["run_id"]), by["run_id"], "airflow") if by.get("run_id") and by.get("dag_id") else "-"
    promoted = card.get("promoted")
    if promoted:
        dag_id, _, run_id = str(promoted.get("by", "")).partition("/")
        who = _a(run_href(airflow_base, dag_id, run_id), promoted["by"], "airflow") if run_id else _e(promoted.get("by"))
        promo = f'{_e(promoted["at"])} by {who} <span class="chip">{_e(promoted.get("action"))}</span>'
        promo += f'<div class="muted">{_e(promoted.get("reason"))}</div>'
    else:
        promo = '<span class="muted">never promoted</span>'
    gate = card.get("gate") or "unknown"
    gate_badge = f'<span class="badge {"ok" if gate == "passed" else "bad"}">gate {_e(gate)}</span>'
    links = " · ".join(
        x for x in (
            _a(card["links"].get("mlflow_run"), "MLflow run", "external"),
            _a(card["links"].get("mlflow_version"), "model version in MLflow", "external"),
        ) if x
    )
    return f"""<div class="card" data-alias="{_e(alias)}">
<h3>{_e(alias.title())}</h3>
<div><span class="big" data-version>v{_e(card["version"])}</span>{gate_badge}
{"".join(f'<span class="chip">{_e(a)}</span>' for a in card["aliases"])}</div>
<dl class="kv">
<dt>{_e(card["metric_name"])}</dt><dd class="mono">{_num(card["metric_value"])}</dd>
<dt>as of</dt><dd>{_e(card.get("as_of"))}</dd>
<dt>trained on</dt><dd>{trained_on}</dd>
<dt>holdout</dt><dd>{held}</dd>
<dt>training run</dt><dd>{run_link} <span class="muted">{_e(by.get("reason"))}</span></dd>
<dt>promoted</dt><dd>{promo}</dd>
<dt>approval</dt><dd>{_e(card.get("approval") or "-")}{" · demoted: " + _e(card["demoted"]) if card.get("demoted") else ""}</dd>
</dl>
<details{" open" if alias == "champion" else ""}><summary>gate decision</summary>{decision_table(card.get("decision"))}</details>
<p>{links}</p>
</div>"""


def history_table(history: list[dict] | None, airflow_base: str) -> str:
    if not history:
        return '<p class="empty">no champion moves recorded yet</p>'
    rows = []
    for h in history:
        action = h.get("action", "")
        css = "bad" if action == "rollback" else "ok" if action == "auto" else ""
        dag_id, _, run_id = str(h.get("by", "")).partition("/")
        by = _a(run_href(airflow_base, dag_id, run_id), h["by"], "airflow") if run_id and " " not in dag_id else _e(h.get("by"))
        prev = f'v{_e(h["previous"])} → ' if h.get("previous") else ""
        rows.append([_e(h.get("seq")), _e(h.get("at")), f'<span class="badge {css}">{_e(action)}</span>',
                     f"{prev}<b>v{_e(h.get('version'))}</b>", by, _e(h.get("reason"))])
    return _table(["#", "when", "action", "champion", "by", "reason"], rows)


def _failures(failed: list[dict]) -> str:
    out = []
    for f in failed:
        column = f"({f['column']})" if f.get("column") else ""
        examples = f' e.g. {", ".join(f["examples"])}' if f.get("examples") else ""
        out.append(f'<span class="chip" title="{_e(f.get("severity"))}{_e(examples)}">'
                   f'{_e(f.get("expectation"))}{_e(column)}</span>')
    return "".join(out)


def gates_table(gates: list[dict] | None, prefix: str) -> str:
    if not gates:
        return '<p class="empty">no partition validated yet</p>'
    rows = []
    for g in gates:
        status = g["status"]
        badge = f'<span class="badge {status}">{_e(STATUS_LABELS.get(status, status))}</span>'
        counts = f'{g.get("critical_failures", 0)} critical, {g.get("warning_failures", 0)} warnings of {_e(g.get("evaluated"))}'
        links = " · ".join(x for x in (_a(report_href(prefix, g.get("data_docs")), "Data Docs", cls="docs"),
                                         _a(report_href(prefix, g.get("report")), "JSON")) if x)
        quarantine = '<span class="badge fail">quarantined</span>' if g.get("quarantined") else ""
        rows.append([_e(g["day"]), badge + " " + quarantine, counts, _failures(g.get("failed") or []), links])
    return _table(["day", "gate", "expectations", "failed", "reports"], rows)


def drift_chart(drift: dict | None, prefix: str, width: int = 900, height: int = 230) -> str:
    """Drifted share per checked day (dots link to the reports), the threshold line, and markers where a
    retrain was triggered. Inline SVG."""
    if not drift or not drift.get("checks"):
        return '<p class="empty">no drift check yet</p>'
    checks, threshold = drift["checks"], float(drift["threshold"])
    left, right, top, bottom = 44, 16, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(1.0, *(c["drifted_share"] for c in checks))
    n = len(checks)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="drifted share of features per checked day" data-checks="{n}">']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     'stroke="currentColor" stroke-opacity=".12"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    parts.append(f'<line class="threshold" x1="{left}" x2="{width - right}" y1="{y(threshold):.1f}" '
                 f'y2="{y(threshold):.1f}" stroke="#c53030" stroke-dasharray="6 4" stroke-width="1.5"/>')
    parts.append(f'<text x="{width - right}" y="{y(threshold) - 5:.1f}" text-anchor="end" '
                 f'style="fill:#c53030">drift_share {threshold:g}</text>')
    # The line joins conclusive checks only: an inconclusive one (too few rows) measured nothing.
    points = " ".join(f"{x(i):.1f},{y(c['drifted_share']):.1f}" for i, c in enumerate(checks) if not c["inconclusive"])
    parts.append(f'<polyline points="{points}" fill="none" stroke="#017cee" stroke-width="2"/>')
    label_every = max(1, n // 10)
    for i, c in enumerate(checks):
        cx, cy = x(i), y(c["drifted_share"])
        if c["triggered"]:
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#b7791f" '
                         'stroke-opacity=".5"/>')
            parts.append(f'<path class="trigger" d="M{cx - 6:.1f},{top + plot_h + 14} l6,-10 l6,10 z" fill="#b7791f">'
                         f'<title>retrain triggered: {_e(c.get("training_run_id"))}</title></path>')
        color = "#a0aec0" if c["inconclusive"] else ("#c53030" if c["signal"] else "#2f855a")
        tip = (f'{c["as_of"]}: drifted share {c["drifted_share"]:.2f}, decision {c["decision"]}'
               + (f', drifted: {", ".join(c["drifted_columns"])}' if c["drifted_columns"] else ""))
        dot = f'<circle class="check" cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{color}"><title>{_e(tip)}</title></circle>'
        href = report_href(prefix, c.get("report"))
        parts.append(f'<a href="{_e(href)}">{dot}</a>' if href else dot)
        if i % label_every == 0 or i == n - 1:
            parts.append(f'<text x="{cx:.1f}" y="{height - 6}" text-anchor="middle">{_e(c["as_of"][5:])}</text>')
    parts.append("</svg>")
    legend = ('<p class="legend muted"><span style="color:#2f855a">● no drift signal</span>'
              '<span style="color:#c53030">● drift signal</span><span style="color:#a0aec0">● inconclusive</span>'
              '<span style="color:#b7791f">▲ retrain triggered</span><span>- - threshold</span></p>')
    latest = checks[-1]
    summary = (f'<p>latest check {_e(latest["as_of"])}: drifted share <b>{latest["drifted_share"]:.2f}</b>, '
               f'decision <span class="chip">{_e(latest["decision"])}</span> <span class="muted">{_e(latest.get("note"))}</span></p>')
    reported = next((c for c in reversed(checks) if c.get("report")), None)
    if reported:
        link = _a(report_href(prefix, reported["report"]), f"drift report of {reported['as_of']}", cls="drift-report")
        summary += f"<p>latest report: {link}</p>"
    return "".join(parts) + legend + summary


def quarantine_table(entries: list[dict] | None, prefix: str, can_replay: bool, airflow_base: str) -> str:
    if not entries:
        return '<p class="empty">nothing in quarantine</p>'
    rows = []
    for q in entries:
        disabled = "" if can_replay else ' disabled title="your role may look but not start runs"'
        button = (f'<button data-replay="{_e(q["day"])}" data-endpoint="{_e(prefix)}/api/replay"{disabled}>replay</button>'
                  '<span class="replay-status"></span>')
        rows.append([
            _e(q["day"]),
            _e(q.get("reason")) + "<br>" + _failures(q.get("failed") or []),
            f'{q["batches"]} <span class="muted mono">md5 {_e(q["md5"])}</span>',
            _a(report_href(prefix, q.get("data_docs")), "Data Docs"),
            button,
        ])
    return _table(["day", "why", "batches", "report", ""], rows, "quarantine")


def control_room(data: dict, prefix: str, airflow_base: str, user: str, can_replay: bool) -> str:
    errors = data.get("errors") or {}
    cards = (model_card(data.get("champion"), "champion", airflow_base)
             + model_card(data.get("challenger"), "challenger", airflow_base))
    role = "can replay" if can_replay else "read-only"
    body = f"""
<h1>Retrainer · {_e(data.get("model_name"))}</h1>
<p class="sub">The model in production, how it got there, and what the gates and the drift monitor saw.
Signed in as <b>{_e(user)}</b> ({role}).</p>
<section id="models"><div class="cards">{cards}</div>{_error(errors, "champion")}{_error(errors, "challenger")}</section>
<section id="drift"><h2>Drift checks</h2>{_error(errors, "drift")}{drift_chart(data.get("drift"), prefix)}</section>
<section id="gates"><h2>Data-quality gate per day</h2>{_error(errors, "gates")}{gates_table(data.get("gates"), prefix)}</section>
<section id="quarantine"><h2>Quarantined partitions</h2>{_error(errors, "quarantine")}
<p class="muted">Replay starts a new <code>training</code> run with <code>as_of</code> = the day: it reads the
day again from the source (fix the source first) and releases the quarantine when the batch passes.</p>
{quarantine_table(data.get("quarantine"), prefix, can_replay, airflow_base)}</section>
<section id="history"><h2>Promotions and rollbacks</h2>{_error(errors, "history")}{history_table(data.get("history"), airflow_base)}</section>
<p class="muted">JSON: <a href="{_e(prefix)}/api/overview">{_e(prefix)}/api/overview</a></p>
"""
    return page("Retrainer", body)


def lineage(data: dict, prefix: str, airflow_base: str) -> str:
    """The lineage panel of one DAG run."""
    head = (f'<h1>Lineage · {_e(data["dag_id"])}</h1><p class="sub mono">{_e(data["run_id"])}'
            f'{" · as of " + _e(data["as_of"]) if data.get("as_of") else ""}</p>')
    parts = [head]
    if data.get("error"):
        parts.append(f'<p class="err">{_e(data["error"])}</p>')
    if data.get("kind") == "none":
        parts.append('<p class="empty">No MLflow run belongs to this DAG run (it stopped before training, '
                     'or it is not a training or drift run).</p>')
    if data.get("mlflow_run"):
        parts.append(f'<p>MLflow run <span class="mono">{_e(data["mlflow_run"]["run_id"])}</span> '
                     f'{_a(data["mlflow_run"].get("link"), "open in MLflow", "external")}</p>')
    if data.get("trigger"):
        t = data["trigger"]
        parts.append(f'<p>Triggered by: <span class="chip">{_e(t.get("reason"))}</span> '
                     f'{_a(report_href(prefix, t.get("report")), "the report that triggered it")}</p>')
    if data.get("drift"):
        d = data["drift"]
        parts.append(f'<h2>Drift check</h2><p>{_e(d.get("summary"))}</p><p>decision <span class="chip">'
                     f'{_e(d.get("decision"))}</span> against champion v{_e(d.get("champion_version"))} '
                     f'{_a(report_href(prefix, d.get("report")), "drift report", cls="drift-report")}</p>')
    model = data.get("model")
    if model:
        parts.append(
            f'<h2>Model version</h2><p><span class="big">v{_e(model["version"])}</span> {_e(model["name"])} · gate '
            f'<span class="badge {"ok" if model.get("gate") == "passed" else "bad"}">{_e(model.get("gate"))}</span> · '
            f'{_e(model.get("approval") or "")}{" · champion since " + _e(model["champion_since"]) if model.get("champion_since") else ""} '
            f'{_a(model.get("link"), "open in MLflow", "external")}</p>'
        )
    if data.get("decision"):
        parts.append("<h2>Gate decision</h2>" + decision_table(data["decision"]))
    if data.get("validation"):
        rows = []
        for v in data["validation"]:
            ok = v.get("success")
            badge = f'<span class="badge {"pass" if ok else "fail"}">{"pass" if ok else "fail"}</span>'
            links = " · ".join(x for x in (_a(report_href(prefix, v.get("data_docs")), "Data Docs"),
                                             _a(report_href(prefix, v.get("report")), "JSON")) if x)
            rows.append([_e(v.get("day")), badge, _e(", ".join(v.get("warnings") or []) or "-"), links])
        parts.append("<h2>Validation</h2>" + _table(["day", "gate", "warnings", "reports"], rows))
    if data.get("partitions"):
        rows = [[_e(p.get("day")), _e(p.get("split")), f'<span class="mono">{_e(p.get("md5"))}</span>', _e(p.get("path"))]
                for p in data["partitions"]]
        parts.append("<h2>Partitions</h2>" + _table(["day", "split", "md5", "path"], rows))
    parts.append(f'<p class="muted">{_a(prefix + "/", "Retrainer control room")} · JSON: '
                 f'<span class="mono">{_e(json.dumps({"kind": data.get("kind")}))}</span></p>')
    return page(f"Lineage {data['run_id']}", "".join(parts))


def message(title: str, text: str, login: str | None = None) -> str:
    link = f'<p><a href="{_e(login)}">Log in to Airflow</a></p>' if login else ""
    return page(title, f"<h1>{_e(title)}</h1><p>{_e(text)}</p>{link}")
