"""`retrainer` command line: seed the demo source, run the pipeline or one step of it outside Airflow.

The step commands are what dvc.yaml calls, so `dvc repro` runs the same library functions as the DAG.
Each writes its small JSON output atomically to --out.

Every command works on one model: ``--model NAME`` (before or after the command) picks
``models/<NAME>.yaml`` of the deployment (retrainer.deployment); without it, the only model. ``--params``
names a params file (one model) or a folder of model files instead of ./models/ or ./params.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from retrainer.config import ConfigError, Params
from retrainer.run_context import for_cli
from retrainer.storage import write_json_atomic

# The run key's DAG part for the stages of dvc.yaml (retrainer.lineage.run_key).
DVC_RUN = "dvc"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _today() -> date:
    # The CLI is the edge of the system: "today" is decided here, never inside library logic.
    return datetime.now(UTC).date()


def resolve_cli_as_of(params: Params, text: str) -> date:
    """`latest` means the newest day the source has rows for; anything else must be a date."""
    if text != "latest":
        return _date(text)
    import sqlalchemy as sa

    from retrainer.errors import SourceError
    from retrainer.sql_source import masked_url, source_table

    with source_table(params.source_url, params.source.table, "find the latest day in") as (conn, table):
        newest = conn.execute(sa.select(sa.func.max(table.c[params.dataset.event_time]))).scalar()
    if newest is None:
        raise SourceError(f"source {masked_url(params.source_url)}: table {params.source.table!r} is empty")
    return (newest if isinstance(newest, datetime) else datetime.fromisoformat(str(newest))).date()


def cmd_seed(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.datagen import DriftSpec, IncidentSpec, seed_source

    end = args.end or _today()
    start = args.start or end - timedelta(days=args.days - 1)
    if start > end:
        raise ValueError(f"--start {start} is after --end {end}")
    drift = None
    if args.drift_start:
        drift = DriftSpec(
            start=args.drift_start,
            kind=args.drift_kind,
            features=tuple(args.drift_features.split(",")),
            magnitude=args.drift_magnitude,
        )
    incidents = [IncidentSpec(day=args.incident_date, kind=args.incident_kind)] if args.incident_date else []
    rows = seed_source(
        params.source_url,
        params.source.table,
        start,
        end,
        args.rows_per_day,
        args.seed if args.seed is not None else params.project.seed,
        drift=drift,
        incidents=incidents,
    )
    return {"rows": rows, "start": start.isoformat(), "end": end.isoformat(), "table": params.source.table}


def cmd_batch(args: argparse.Namespace, params: Params) -> dict:
    """A generated day of rows as a landing file (CSV or Parquet), written atomically."""
    from retrainer.datagen import generate_day
    from retrainer.storage import write_with

    out = Path(args.batch_file)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--out {out}: the file name must end in .csv or .parquet")
    frame = generate_day(args.day, args.rows, args.seed if args.seed is not None else params.project.seed)
    if out.suffix.lower() == ".csv":
        write_with(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        write_with(out, lambda tmp: frame.to_parquet(tmp, index=False))
    return {"path": str(out), "day": args.day.isoformat(), "rows": len(frame)}


def cmd_init(args: argparse.Namespace, params: Params) -> dict:
    from retrainer import versioning

    versioning.ensure_repo(params.root, params.dvc.remote_name, params.dvc_remote_url)
    return {"dvc_repo": str(params.root), "remote": params.dvc.remote_name, "url": params.dvc_remote_url}


def cmd_lineage(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.reproduce import format_lineage, read_lineage

    record = read_lineage(params, args.model or params.model.registered_name, args.ref)
    if not args.json:
        print(format_lineage(record))
        args.quiet = True
    return record


def cmd_reproduce(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.reproduce import reproduce

    model = args.model or params.model.registered_name
    scratch = Path(args.scratch) if args.scratch else params.data_dir / "reproductions" / f"{model}-{args.ref}"
    result = reproduce(params, model, args.ref, scratch).to_dict()
    if not result["identical"]:
        args.exit_code = 1
    return result


def cmd_run(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.pipeline import run_pipeline

    as_of = resolve_cli_as_of(params, args.as_of)
    run = for_cli(as_of)
    return run_pipeline(params, as_of, {"dag_id": run.dag_id, "reason": run.reason})


def cmd_ingest(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.pipeline import step_ingest
    from retrainer.run_context import window_days, window_length
    from retrainer.storage import md5_file, partition_file

    as_of = resolve_cli_as_of(params, args.as_of)
    summary = step_ingest(params, as_of)
    # dvc.yaml's ingest stage: its output must describe the window's data, not what this call happened to
    # write, or every `dvc repro` would see a changed file and re-run every later stage. So it lists every
    # partition of the window with its hash (validate then checks the whole window the model learns from).
    window = []
    for day in window_days(as_of, window_length(params, as_of)):
        path = partition_file(params.data_dir, day)
        if path.exists():
            window.append({"day": day.isoformat(), "path": str(path), "md5": md5_file(path)})
    return {"as_of": summary["as_of"], "as_of_rows": summary["as_of_rows"], "new_partitions": window,
            "empty_days": summary["empty_days"]}


def cmd_validate(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.pipeline import step_validate

    ingested = json.loads(Path(args.ingest).read_text(encoding="utf-8"))
    return step_validate(params, date.fromisoformat(ingested["as_of"]), ingested)


def cmd_prepare(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.prepare import prepare_window

    validated = json.loads(Path(args.validation).read_text(encoding="utf-8"))
    as_of = date.fromisoformat(validated["as_of"])
    prepared = prepare_window(params, as_of, Path(args.out_dir))
    from retrainer.lineage import run_key
    from retrainer.pipeline import gate_prepared
    from retrainer.run_context import window_length

    gate = gate_prepared(params, as_of, prepared.train_path, window_length(params, as_of))
    key = run_key(DVC_RUN, as_of.isoformat(), prepared.data_hash, params)
    return {**prepared.to_dict(), "run_key": key, "prepared_gate": gate}


def cmd_train(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.pipeline import step_train

    prepared = json.loads((Path(args.prepared) / "prepared.json").read_text(encoding="utf-8"))
    return step_train(params, prepared, {"dag_id": DVC_RUN, "reason": "dvc repro"})


def cmd_evaluate(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.pipeline import step_evaluate

    prepared = json.loads((Path(args.prepared) / "prepared.json").read_text(encoding="utf-8"))
    trained = json.loads(Path(args.trained).read_text(encoding="utf-8"))
    evaluated = step_evaluate(params, prepared, trained, Path(args.out) if args.out else None)
    decision = json.loads(Path(evaluated["decision_path"]).read_text(encoding="utf-8"))
    return {**decision, "decision_path": evaluated["decision_path"]}


def _who(explicit: str | None) -> str:
    if explicit:
        return explicit
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "cli"


def cmd_promote(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.register import promote_version

    move = promote_version(
        params, args.version, args.reason, _who(args.by), expected_champion=args.expected_champion,
        override=args.override,
    )
    return move.to_dict()


def cmd_rollback(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.register import rollback

    return rollback(params, args.reason, _who(args.by), to_version=args.to_version).to_dict()


def cmd_registry(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.tracking import registry_status

    return registry_status(params, limit=args.limit)


def cmd_score(args: argparse.Namespace, params: Params) -> dict:
    from retrainer.scoring import score_day

    shadow = params.scoring.shadow if args.shadow is None else args.shadow
    return score_day(params, args.day, shadow=shadow, scoring_run="cli")

# --- retrainer suite init: a starting validation suite profiled from a reference sample ---------


def cmd_suite_init(args: argparse.Namespace, params: Params) -> dict:
    from retrainer import suite_fit, suite_init
    from retrainer.validate import parse_suite

    ds = params.dataset
    if args.table:
        url = args.url or params.source_url
        newest_first = args.event_time or ds.event_time
        frame = suite_init.read_reference_table(url, args.table, limit=args.sample_rows, order_by=newest_first)
        source = f"table {args.table}"
        if len(frame) == args.sample_rows and newest_first in frame.columns:
            frame = suite_init.drop_cut_day(frame, url, args.table, newest_first)  # its oldest day may be cut short
    else:
        frame = suite_init.read_reference_file(Path(args.file), event_time=args.event_time or ds.event_time)
        source = f"file {args.file}"
    name = args.name or (args.table or Path(args.file).name.split(".")[0])

    def role(flag: str | None, configured: str) -> str | None:
        # An explicit flag must name a column; the params.yaml default applies only where the column exists.
        if flag is not None:
            return flag or None
        return configured if configured in frame.columns else None

    roles = {
        "entity_id": role(args.entity_id, ds.entity_id),
        "event_time": role(args.event_time, ds.event_time),
        "label": role(args.label, ds.label),
    }
    suite = suite_init.profile_suite(
        frame,
        name=name,
        margin=args.margin,
        max_categories=args.max_categories,
        sample_rows=args.sample_rows,
        seed=args.seed if args.seed is not None else params.project.seed,
        **roles,
    )
    suite["meta"]["reference"]["source"] = source
    # Every day of the sample must pass the suite made from it: loosen or downgrade what one fails.
    fitted = suite_fit.fit_suite(suite, frame, roles["event_time"])
    out = Path(args.suite_file) if args.suite_file else params.path("validation_suites") / f"{name}.json"
    parse_suite(suite, out)  # GX accepts it, or nothing is written
    suite_init.write_suite(suite, out, overwrite=args.force)
    severities = [e["meta"]["severity"] for e in suite["expectations"]]
    return {
        "suite": str(out),
        "name": name,
        "source": source,
        "rows": len(frame),
        "roles": roles,
        "expectations": len(severities),
        "critical": severities.count("critical"),
        "warning": severities.count("warning"),
        "days_checked": len(suite_fit.sample_days(frame, roles["event_time"])),
        "loosened": suite_fit.changed_expectations(fitted, "loosened"),
        "downgraded": suite_fit.changed_expectations(fitted, "downgraded"),
        "next": "review the suite, then point validation.raw_suite at it in params.yaml",
    }


def _add_suite_commands(sub: argparse._SubParsersAction) -> None:
    suite = sub.add_parser("suite", help="validation suites: bootstrap one for a new data set")
    suite_sub = suite.add_subparsers(dest="suite_command", required=True)
    init = suite_sub.add_parser(
        "init",
        help="profile a reference sample and write a starting suite to validation_suites/ for review",
    )
    source = init.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="read a sample of this table from the source (params source.url)")
    source.add_argument("--file", help="read the reference sample from a CSV or Parquet file")
    init.add_argument("--url", help="SQLAlchemy URL to read --table from (default: params source.url)")
    init.add_argument("--name", help="suite name (default: the table name or file stem)")
    # dest differs from "out": main() writes a command's JSON result to args.out.
    init.add_argument("--out", dest="suite_file", help="suite file (default: validation_suites/<name>.json)")
    init.add_argument("--force", action="store_true", help="replace an existing suite file")
    init.add_argument("--sample-rows", type=int, default=100_000, help="rows to read and profile (default 100000)")
    init.add_argument("--margin", type=float, default=0.1, help="widen ranges by this share of max-min (0.1)")
    init.add_argument("--max-categories", type=int, default=50, help="text with at most this many values is a set")
    init.add_argument("--seed", type=int, help="sampling seed (default: project.seed)")
    for flag, what in (("--entity-id", "entity id"), ("--event-time", "event time"), ("--label", "label")):
        init.add_argument(flag, help=f"{what} column (default: params dataset's, if present; '' for none)")
    init.set_defaults(handler=cmd_suite_init)


def numeric_metrics(command: str, result: dict) -> dict:
    if command == "train":
        return {k: v for k, v in result["metrics"].items() if isinstance(v, int | float)}
    metric = result["primary_metric"]
    return {
        f"challenger_{metric}": result["challenger_metrics"][metric],
        f"champion_{metric}": None if result["champion_metrics"] is None else result["champion_metrics"][metric],
        "improvement": result["improvement"],
        "passed": int(result["passed"]),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrainer", description=__doc__)
    parser.add_argument("--params", help="a params file, or a folder of model files (default: $RETRAINER_PARAMS, "
                        "else ./models/ when it holds model files, else ./params.yaml)")
    parser.add_argument("--model", dest="model_name", help=MODEL_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo_data_commands(sub)
    _add_registry_commands(sub)
    _add_step_commands(sub)
    _add_suite_commands(sub)
    for command in sub.choices.values():  # `retrainer ingest --model churn` as well as `retrainer --model churn ingest`
        command.add_argument("--model", dest="model_name", default=argparse.SUPPRESS, help=MODEL_HELP)
    return parser


MODEL_HELP = "the model (models/<NAME>.yaml) to work on (default: the only model of the deployment)"


def load_model(args: argparse.Namespace) -> Params:
    """The params of the model the arguments name (retrainer.deployment; the project is the CWD)."""
    from retrainer.deployment import find_deployment

    found = find_deployment(Path.cwd(), explicit=args.params)
    name = getattr(args, "model_name", None)
    if name is None and args.command in DEPLOYMENT_COMMANDS and found.names():
        name = found.names()[0]  # every model shares the DVC settings (retrainer.deployment checks it)
    return found.load(name)


# Commands about the deployment, not one model: without --model, any model's params will do.
DEPLOYMENT_COMMANDS = ("init",)


def _add_demo_data_commands(sub: argparse._SubParsersAction) -> None:
    seed = sub.add_parser("seed", help="write generated demo rows into the source table (idempotent per day)")
    seed.add_argument("--days", type=int, default=60, help="days ending at --end (default 60)")
    seed.add_argument("--start", type=_date)
    seed.add_argument("--end", type=_date, help="last day (default: today, UTC)")
    seed.add_argument("--rows-per-day", type=int, default=2000)
    seed.add_argument("--seed", type=int, help="random seed (default: project.seed)")
    seed.add_argument("--drift-start", type=_date, help="inject drift from this day")
    seed.add_argument("--drift-kind", choices=["abrupt", "gradual"], default="abrupt")
    seed.add_argument("--drift-features", default="monthly_charges,num_support_calls")
    seed.add_argument("--drift-magnitude", type=float, default=1.0)
    seed.add_argument("--incident-date", type=_date, help="inject a data-quality incident on this day")
    seed.add_argument(
        "--incident-kind",
        default="nulls",
        choices=["nulls", "out_of_range", "unseen_category", "duplicate_keys", "missing_column",
                 "wrong_type", "future_timestamps", "outside_interval", "empty"],
    )
    seed.set_defaults(handler=cmd_seed)

    batch = sub.add_parser(
        "batch", help="write one generated day as a CSV/Parquet file, e.g. into the landing folder (atomic)"
    )
    batch.add_argument("--day", type=_date, required=True)
    batch.add_argument("--rows", type=int, default=500)
    batch.add_argument("--seed", type=int, help="random seed (default: project.seed; another seed, other rows)")
    # Its own dest: the generic --out of the other commands receives their JSON result.
    batch.add_argument("--out", dest="batch_file", required=True, help="file to write (.csv or .parquet)")
    batch.set_defaults(handler=cmd_batch)

    init = sub.add_parser("init", help="make the project a DVC repo with the remote from params.yaml (idempotent)")
    init.set_defaults(handler=cmd_init)


def _add_registry_commands(sub: argparse._SubParsersAction) -> None:
    lineage = sub.add_parser("lineage", help="what a model version learned from, why, and where it came from")
    lineage.add_argument("model", nargs="?", help="registered model name (default: params model.registered_name)")
    lineage.add_argument("ref", help="version number or alias (champion, challenger)")
    lineage.add_argument("--json", action="store_true", help="print the record as JSON")
    lineage.set_defaults(handler=cmd_lineage)

    repro = sub.add_parser("reproduce", help="re-train a model version from its recorded data and compare")
    repro.add_argument("model", nargs="?", help="registered model name (default: params model.registered_name)")
    repro.add_argument("ref", help="version number or alias")
    repro.add_argument("--scratch", help="scratch folder (default: data/reproductions/<model>-<ref>)")
    repro.set_defaults(handler=cmd_reproduce)

    promote = sub.add_parser("promote", help="make a model version the champion (manual approval)")
    promote.add_argument("--version", required=True, type=int, help="model version to promote")
    promote.add_argument("--reason", required=True, help="why (recorded on the version and in the history)")
    promote.add_argument("--by", help="who (default: cli:<user>)")
    promote.add_argument("--expected-champion", type=int, help="only move if this version is the champion now")
    promote.add_argument("--override", action="store_true", help="promote even if its gate failed or it is older")
    promote.set_defaults(handler=cmd_promote)

    back = sub.add_parser("rollback", help="move the champion back in one step (default: to champion-previous)")
    back.add_argument("--to-version", type=int, help="version to restore (default: the previous champion)")
    back.add_argument("--reason", required=True, help="why (recorded on the versions and in the history)")
    back.add_argument("--by", help="who (default: cli:<user>)")
    back.set_defaults(handler=cmd_rollback)

    registry = sub.add_parser("registry", help="aliases, recent versions with gate/approval, champion history")
    registry.add_argument("--limit", type=int, default=10)
    registry.set_defaults(handler=cmd_registry)

    score = sub.add_parser("score", help="batch-score one day's partition with the champion (and shadow)")
    score.add_argument("--day", required=True, type=_date)
    score.add_argument("--shadow", action=argparse.BooleanOptionalAction, default=None,
                       help="also score with the challenger (default: scoring.shadow)")
    score.set_defaults(handler=cmd_score)


def _add_step_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the whole pipeline for one as-of date in this process")
    run.add_argument("--as-of", default="latest", help="YYYY-MM-DD or 'latest' (newest day in the source)")
    run.set_defaults(handler=cmd_run)
    for name, handler, extra in (
        ("ingest", cmd_ingest, [("--as-of", {"default": "latest"})]),
        ("validate", cmd_validate, [("--ingest", {"required": True})]),
        ("prepare", cmd_prepare, [("--validation", {"required": True}), ("--out-dir", {"required": True})]),
        ("train", cmd_train, [("--prepared", {"required": True}), ("--metrics", {})]),
        ("evaluate", cmd_evaluate, [("--prepared", {"required": True}), ("--trained", {"required": True}),
                                    ("--metrics", {})]),
    ):
        step = sub.add_parser(name, help=f"the {name} step (as dvc.yaml runs it)")
        for flag, options in extra:
            step.add_argument(flag, **options)
        step.add_argument("--out", help="write the step's JSON output here")
        step.set_defaults(handler=handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_model(args)
        result = args.handler(args, params)
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"retrainer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    if args.command == "prepare":
        write_json_atomic(Path(args.out_dir) / "prepared.json", result)
    if out:
        write_json_atomic(Path(out), result)
    if getattr(args, "quiet", False):
        return getattr(args, "exit_code", 0)
    if getattr(args, "metrics", None):
        # `dvc metrics show/diff` wants numbers only.
        write_json_atomic(Path(args.metrics), numeric_metrics(args.command, result))
    print(json.dumps(result, indent=2, default=str))
    return getattr(args, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
