"""The `outcomes` command line: a thin face over the Python API.

Argument parsing only: each subcommand's handler (``_simulate``, ``_run``, ``_report``, ...)
imports the API it calls inside the function, so ``outcomes --help`` starts quickly.

Exit codes (all subcommands):

0  success
1  internal error: a bug in outcomes (please report it with the command you ran)
2  usage or input error: the message names the file, column or option
3  ingest: done, but some rows were quarantined (see `outcomes quarantine`)
4  ingest: done, but some files were rejected whole
5  ingest --strict: violations found, nothing written
6  audit: results differ from the expected ones
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outcomes.errors import InputError, OutcomesError

if TYPE_CHECKING:
    from outcomes.data.store import Store

EPILOG = textwrap.dedent(
    """\
    examples:
      outcomes simulate trial --seed 1 --out feeds/trial
      outcomes simulate registry --seed 2 --out feeds/registry
      outcomes ingest feeds/trial feeds/registry --store outcomes.duckdb
      outcomes summary --store outcomes.duckdb
      outcomes quarantine --store outcomes.duckdb --out quarantine.csv
      outcomes ingest feeds/trial --store outcomes.duckdb --reason "query 12: score re-read"
      outcomes history --store outcomes.duckdb --table assessments
      outcomes withdraw --store outcomes.duckdb --subject S07 --reason "consent withdrawn"
      outcomes export --store outcomes.duckdb --table assessments --snapshot 1 --out a.parquet
      outcomes validate site3_assessments.csv
      outcomes map draft export.csv --redcap-dictionary DD.csv > export.csv.mapping.yaml
      outcomes dictionary --out dictionary.md
      outcomes compare --store outcomes.duckdb --out results/compare
      outcomes report trial -P store=outcomes.duckdb --to html,pdf,docx --out out
      outcomes run analyses/trial_lmm_gb_quant.yaml
      outcomes audit analyses --strict
      outcomes power --n 5,8,10,15 --reps 1000 --jobs 2

    exit codes: 0 ok; 1 internal error (a bug); 2 usage or input error;
      3 rows quarantined; 4 files rejected; 5 strict mode found violations (nothing written);
      6 audit found differences; 141 the reader of the output stopped early (e.g. `| head`)
    """
)


def _simulate(args: argparse.Namespace) -> int:
    from outcomes.simulate.output import write_feeds
    from outcomes.simulate.registry import simulate_registry
    from outcomes.simulate.trial import simulate_trial

    if args.seed < 0 or args.seed >= 2**63:
        raise InputError(f"--seed {args.seed}: give a whole number from 0 to 2**63 - 1")
    if args.n_subjects is not None and args.n_subjects < 1:
        raise InputError(f"--n-subjects {args.n_subjects}: give at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder")
    options = {"seed": args.seed}
    if args.n_subjects is not None:
        options["n_subjects"] = args.n_subjects
    if args.kind == "trial":
        feeds = simulate_trial(design=args.design, **options)
    else:
        feeds = simulate_registry(**options)
    paths = write_feeds(feeds, args.out, format=args.format)
    rows = {name: len(df) for name, df in feeds.tables.items()}
    print(
        f"wrote {len(paths)} files to {args.out}: "
        + ", ".join(f"{name} {n}" for name, n in rows.items())
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from outcomes.data.ingest import ingest

    report = ingest(
        args.paths, args.store, strict=args.strict, note=args.note or "", reason=args.reason
    )
    print(report.summary())
    return report.exit_code


def _read_store(path: str) -> Store:
    """Open a store read-only; say so on stderr when another process is writing to it."""
    from outcomes.data.store import Store

    store = Store(path, read_only=True)
    for note in store.notes:
        print(f"note: {note}", file=sys.stderr)
    return store


def _validate(args: argparse.Namespace) -> int:
    from outcomes.data.ingest import prepare_feed, validate_feed

    ok = True
    for feed in prepare_feed(Path(args.file)):
        result = validate_feed(feed)
        # report rows as the file numbers them (blank lines and multi-line cells counted)
        result.violations["row"] = feed.rows[result.violations["row"].to_numpy(dtype=int)] - 1
        print(f"{args.file}: " + result.report(limit=args.limit))
        ok = ok and result.ok
    return 0 if ok else 3


def _map(args: argparse.Namespace) -> int:
    from outcomes.data.draft import draft_mapping

    dd = Path(args.redcap_dictionary) if args.redcap_dictionary else None
    sys.stdout.write(draft_mapping(Path(args.export), dd, args.table or None))
    return 0


def _dictionary(args: argparse.Namespace) -> int:
    from outcomes.data.dictionary import render_dictionary
    from outcomes.data.safety import check_out_path

    text = render_dictionary()
    if args.out:
        check_out_path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _summary(args: argparse.Namespace) -> int:
    import pandas as pd

    with _read_store(args.store) as store:
        snap = args.snapshot or store.latest()
        snaps = store.snapshots()
        print(f"store {args.store}: {len(snaps)} snapshot(s); showing snapshot {snap}\n")
        print(
            snaps[["snapshot_id", "created_at", "rows_accepted", "rows_quarantined"]].to_string(
                index=False
            )
        )
        tables = store.tables(snap)
        print("\nrows by study:")
        counts = (
            pd.DataFrame({name: df.groupby("study_id").size() for name, df in tables.items()})
            .fillna(0)
            .astype(int)
        )
        print(counts.to_string())
        units = tables["units"].merge(tables["subjects"], on=["study_id", "subject_id"])
        if len(units):
            print("\nunits by study, indication and modality:")
            print(
                units.groupby(["study_id", "indication", "modality"])
                .size()
                .rename("units")
                .reset_index()
                .to_string(index=False)
            )
        q = store.quarantine()
        if len(q):
            print("\nquarantined violations by rule:")
            print(
                q.groupby(["table_name", "rule"])
                .size()
                .rename("rows")
                .reset_index()
                .to_string(index=False)
            )
    return 0


def _snapshots(args: argparse.Namespace) -> int:
    with _read_store(args.store) as store:
        print(store.snapshots().to_string(index=False))
        print()
        print(store.files().to_string(index=False))
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from outcomes.data.safety import write_csv

    with _read_store(args.store) as store:
        q = store.quarantine(args.snapshot)
    if args.out:
        write_csv(q, args.out)
        print(f"wrote {len(q)} quarantined violations to {args.out}")
    else:
        print(q.drop(columns="record").to_string(index=False) if len(q) else "no quarantined rows")
    return 0


def _export(args: argparse.Namespace) -> int:
    from outcomes.data.safety import check_out_path, write_csv

    out = check_out_path(args.out)
    with _read_store(args.store) as store:
        df = store.table(args.table, args.snapshot)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    else:
        write_csv(df, out)
    print(f"wrote {len(df)} rows of {args.table} to {out}")
    return 0


def _history(args: argparse.Namespace) -> int:
    """``outcomes history``: corrections and withdrawals, oldest first."""
    from outcomes.data.safety import write_csv

    key = args.key
    if key and all("=" in k for k in key):
        key = dict(k.split("=", 1) for k in key)
    with _read_store(args.store) as store:
        h = store.history(table=args.table, key=key)
    if args.out:
        write_csv(h, args.out)
        print(f"wrote {len(h)} history rows to {args.out}")
    else:
        print(h.to_string(index=False) if len(h) else "no corrections or withdrawals")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    """``outcomes withdraw``: remove a subject from later snapshots, with the reason."""
    from outcomes.data.store import Store

    with Store(args.store) as store:
        snap = store.withdraw(args.subject, args.reason, study_id=args.study)
        removed = store.history()
    removed = removed[removed["snapshot_id"] == snap]
    counts = removed.groupby("table_name", sort=False).size()
    print(
        f"snapshot {snap} written: subject {args.subject} withdrawn; rows removed from snapshot "
        f"{snap} on (earlier snapshots keep them): "
        + ", ".join(f"{t} {n}" for t, n in counts.items())
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    """``outcomes run SPEC...``: run declared analyses into ``--results``."""
    import json
    import time

    from outcomes.analysis.run import run_analyses
    from outcomes.analysis.spec import discover_specs

    paths = discover_specs(args.specs)
    t0 = time.perf_counter()
    folders = run_analyses(paths, args.results, save_expected=args.save_expected)
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        n_fig = sum(k.startswith("figures/") for k in manifest["results"]["files"])
        print(
            f"wrote {folder}/: {manifest['results']['rows']} statistics, {n_fig} figure(s), "
            f"{len(manifest['warnings'])} warning(s)"
        )
    if args.save_expected:
        print("copied ard.csv, estimates.csv, manifest.json to each spec's expected/<name>/")
    print(f"{len(folders)} analyses in {time.perf_counter() - t0:.1f} s")
    return 0


def _audit(args: argparse.Namespace) -> int:
    """``outcomes audit``: re-run, compare, explain; exit 6 on any difference."""
    from outcomes.analysis.audit import AUDIT_FAILED, audit

    report = audit(
        args.paths or ["analyses"],
        strict=args.strict,
        lock=args.lock if (args.check_lock or args.compiled_lock) else None,
        compiled_lock=args.compiled_lock,
        project=args.project,
        out_dir=args.keep,
        update_expected=args.update_expected,
    )
    print(report.text())
    return 0 if report.ok else AUDIT_FAILED


def _compare(args: argparse.Namespace) -> int:
    """``outcomes compare``: print the table; write it and the forest plot with ``--out``."""
    import warnings

    from outcomes.comparisons.comparison import compare
    from outcomes.errors import OutcomesWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compare(
            args.store,
            snapshot=args.snapshot,
            primary_day=args.primary_day,
            estimand=args.estimand,
            ps_model=args.ps_model,
            published=True if args.published else None,
            by_body_site=args.by_body_site,
            responder_model=args.responder_model,
            grade_model=args.grade_model,
        )
        print(result)
        if args.out:
            paths = result.save(args.out)
            print(f"\nwrote {len(paths)} files to {args.out}: " + ", ".join(p.name for p in paths))
    n_warn = len({str(w.message) for w in caught if issubclass(w.category, OutcomesWarning)})
    if n_warn:
        print(
            f"{n_warn} distinct model warning(s): each row's are in the warning column",
            file=sys.stderr,
        )
    return 0


#: Report parameters holding a file path, made absolute before the report runs.
PATH_PARAMS = ("store",)


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict of Python values.

    Values are read as Python literals when they are one (``snapshot=3``, ``indication=None``,
    ``published=True``) and as text otherwise (``study=TRIAL1``). A ``store`` path is taken
    relative to the current directory (the report's cells run in their own folder).

    Examples
    --------
    >>> parse_params(["snapshot=2", "study=TRIAL1", "indication=None"])
    {'snapshot': 2, 'study': 'TRIAL1', 'indication': None}
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"-P expects key=value with a Python name as key, got {pair!r}")
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if key in PATH_PARAMS and isinstance(value, str):
            value = str(Path(value).resolve())
        params[key] = value
    return params


def _report(args: argparse.Namespace) -> int:
    """``outcomes report NAME``: render, print the files written and any warnings."""
    from outcomes.report import render
    from outcomes.report.lookup import report_file

    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    with report_file(args.name, args.reports) as path:
        result = render(
            path,
            to=formats,
            params=parse_params(args.param),
            out_dir=args.out,
            engine=args.engine,
            on_warning="error" if args.strict else "record",
        )
    for fmt, out in result.items():
        print(f"{fmt:5s} {out}")
    print(f"rendered {path.name} with the {result.engine} engine in {result.seconds:.1f} s")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _numbers(text: str, option: str, kind: type = int) -> list:
    """``"5,10,20"`` -> ``[5, 10, 20]``, with a message naming the option otherwise."""
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} {text!r}: give numbers separated by commas") from None


def _power(args: argparse.Namespace) -> int:
    """``outcomes power``: power by sample size, by simulation; print the table."""
    from outcomes.planning.study import power

    options: dict[str, Any] = {
        "dropout": args.dropout,
        "missed_visit": args.missed_visit,
        "sd_unit": args.sd_unit,
        "sd_residual": args.sd_residual,
        "primary_day": args.primary_day,
    }
    if args.visit_days:
        options["visit_days"] = tuple(_numbers(args.visit_days, "--visit-days"))
    result = power(
        args.design,
        n=_numbers(args.n, "--n"),
        reps=args.reps,
        seed=args.seed,
        effect=args.effect,
        analysis=args.analysis,
        ddf=args.ddf,
        time=args.time,
        alpha=args.alpha,
        target=args.target,
        null=not args.no_null,
        interval=args.interval,
        backend=args.backend,
        n_jobs=args.jobs,
        scheduler=args.scheduler,
        store=args.store,
        **options,
    )
    design = result.design
    print(
        f"{design.design}, visits on days {list(design.visit_days)}, effect "
        f"{design.effect:.3g} points at day {design.primary_day}, dropout {design.dropout:g}; "
        f"{result.analysis.label()}; {result.reps} trials per size, seed {result.seed}"
    )
    print(result.table().to_string(index=False))
    size = result.sample_size
    reached = "not reached in the sizes simulated" if size["estimate"] is None else size["estimate"]
    print(f"{design.size_label.capitalize()} reaching {result.target:.0%} power: {reached}", end="")
    if size["estimate"] is not None:
        sure = size["conservative"] or "not reached"
        print(f" (lower Monte Carlo limit above the target: {sure})", end="")
    print()
    s = result.summary
    total = int(s["power_reps"].sum() + s["type1_reps"].sum())
    print(
        f"fits with warnings: {int(s['with_warnings'].sum())} of {total}; "
        f"failed fits: {int(s['failed'].sum())} (counts by code: PowerResult.diagnostics)"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.summary.to_csv(out / "power_summary.csv", index=False)
        result.design.assumptions().to_csv(out / "design.csv", index=False)
        result.plot().save(out / "power_curve.png", dpi=200, verbose=False)
        print(f"wrote power_summary.csv, design.csv and power_curve.png to {out}")
    return 0


STORE_HELP = "DuckDB store file"
SNAPSHOT_HELP = "snapshot to read (default: the latest)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="outcomes",
        description="Clinical outcomes research on microneedling: schema, ingest, models, reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str, example: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add(
        "simulate",
        _simulate,
        "write synthetic feeds with known truth (truth.json)",
        "outcomes simulate trial --seed 1 --out feeds/trial",
    )
    p.add_argument("kind", choices=["trial", "registry"], help="what to simulate")
    p.add_argument("--seed", type=int, required=True, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, help="folder to write the feeds to")
    p.add_argument(
        "--format",
        choices=["csv", "parquet", "xlsx"],
        default="csv",
        help="file format of the feeds",
    )
    p.add_argument(
        "--design",
        choices=["split_body", "parallel"],
        default="split_body",
        help="trial design (trials only)",
    )
    p.add_argument(
        "--n-subjects",
        type=int,
        default=None,
        help="subjects to simulate (default: 50 for a trial, 2,000 for a registry)",
    )

    p = add(
        "ingest",
        _ingest,
        "validate feeds and add them to a store as a new snapshot",
        "outcomes ingest feeds/ --store outcomes.duckdb --strict",
    )
    p.add_argument(
        "paths",
        nargs="+",
        help="feed files or folders (CSV, Excel, Parquet, SPSS .sav, Stata .dta, SAS)",
    )
    p.add_argument("--store", required=True, help="DuckDB store file (created if missing)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="any violation fails the ingest and nothing is written",
    )
    p.add_argument("--note", help="free text kept with the snapshot")
    p.add_argument(
        "--reason",
        help="why stored rows are re-sent with other values: records them as corrections "
        "(without it they are quarantined)",
    )

    p = add(
        "validate",
        _validate,
        "check one feed against the dictionary without storing it",
        "outcomes validate site3_assessments.csv",
    )
    p.add_argument("file", help="the feed file (CSV, Excel, Parquet, SPSS, Stata or SAS)")
    p.add_argument("--limit", type=int, default=50, help="violations to print")

    p = add(
        "map",
        _map,
        "draft a mapping file for an export (written to standard output)",
        "outcomes map draft export.csv --redcap-dictionary DataDictionary.csv > "
        "export.csv.mapping.yaml",
    )
    p.add_argument("action", choices=["draft"], help="draft: write a starting mapping")
    p.add_argument(
        "export", help="the export (CSV, Excel's first sheet, Parquet, SPSS, Stata or SAS)"
    )
    p.add_argument(
        "--redcap-dictionary",
        metavar="DD.csv",
        help="REDCap's Data Dictionary CSV: forms, coded fields and identifier flags",
    )
    p.add_argument(
        "--table",
        action="append",
        metavar="TABLE",
        help="draft only this table (repeat for several; default: every table that matches)",
    )

    p = add(
        "dictionary",
        _dictionary,
        "render the data dictionary for people (Markdown)",
        "outcomes dictionary --out dictionary.md",
    )
    p.add_argument("--out", help="Markdown file to write (default: print it)")

    p = add(
        "summary",
        _summary,
        "summarise a store: snapshots, rows by study, quarantine",
        "outcomes summary --store outcomes.duckdb",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--snapshot", type=int, help=SNAPSHOT_HELP)

    p = add(
        "snapshots",
        _snapshots,
        "list snapshots and their source files with hashes",
        "outcomes snapshots --store outcomes.duckdb",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)

    p = add(
        "quarantine",
        _quarantine,
        "list quarantined rows with file, row, column and rule",
        "outcomes quarantine --store outcomes.duckdb --out quarantine.csv",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--snapshot", type=int, help="rows quarantined by this snapshot only")
    p.add_argument("--out", help="write CSV (with the whole original records) instead")

    p = add(
        "export",
        _export,
        "write one table of a snapshot to CSV or Parquet",
        "outcomes export --store s.duckdb --table assessments --snapshot 1 --out a.csv",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--table", required=True, help="table to write, e.g. assessments")
    p.add_argument("--snapshot", type=int, help=SNAPSHOT_HELP)
    p.add_argument("--out", required=True, help="file to write: .csv or .parquet")

    p = add(
        "history",
        _history,
        "list corrections (old and new value of each cell) and withdrawals, with reasons",
        "outcomes history --store outcomes.duckdb --table assessments --key T1 S1-L",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--table", help="only this table's changes, e.g. assessments")
    p.add_argument(
        "--key",
        nargs="+",
        metavar="VALUE",
        help="only these keys: values in key order (T1 S1-L) or COLUMN=VALUE pairs",
    )
    p.add_argument("--out", help="write CSV instead")

    p = add(
        "withdraw",
        _withdraw,
        "remove a subject who withdrew consent from later snapshots (units, sessions, "
        "assessments, adverse events too), with the reason in the history",
        'outcomes withdraw --store outcomes.duckdb --subject S07 --reason "consent withdrawn"',
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--subject", required=True, help="the subject's id")
    p.add_argument("--study", help="the subject's study (needed when several have this id)")
    p.add_argument("--reason", required=True, help="why, kept in the history")

    # --- run / audit (declared analyses) ---
    p = add(
        "run",
        _run,
        "run declared analyses (YAML) into results/NAME/ with a manifest",
        "outcomes run analyses/trial_lmm_gb_quant.yaml",
    )
    p.add_argument("specs", nargs="+", help="analysis specs (YAML) or folders of them")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument(
        "--save-expected",
        action="store_true",
        help="also copy the results to each spec's expected/NAME/ (the audit's reference)",
    )

    p = add(
        "audit",
        _audit,
        "re-run declared analyses and compare with their expected results (exit 6 if they differ)",
        "outcomes audit analyses --strict --check-lock",
    )
    p.add_argument("paths", nargs="*", help="specs or folders of specs (default: analyses)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when package or Python versions differ from the expected manifest",
    )
    p.add_argument(
        "--check-lock",
        action="store_true",
        help="compile the lock file again with uv and fail if it differs",
    )
    p.add_argument("--lock", default="requirements.lock", help="lock file to check")
    p.add_argument("--compiled-lock", help="a fresh compile to compare --lock with (skips uv)")
    p.add_argument("--project", default=".", help="folder with pyproject.toml")
    p.add_argument("--keep", help="write the re-run results here (default: a temporary folder)")
    p.add_argument(
        "--update-expected",
        action="store_true",
        help="after reporting, replace the expected results that differ with the re-run ones",
    )
    # --- compare (combinations vs microneedling alone) ---
    p = add(
        "compare",
        _compare,
        "compare each combination with microneedling alone, by indication: table and forest plot",
        "outcomes compare --store outcomes.duckdb --out results/compare",
    )
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--snapshot", type=int, help=SNAPSHOT_HELP)
    p.add_argument(
        "--out", help="folder for comparison.csv/.parquet, comparison_ard.csv, forest.png/.pdf"
    )
    p.add_argument(
        "--primary-day", type=float, default=168, help="primary visit, study day (default 168)"
    )
    p.add_argument(
        "--estimand",
        choices=["overlap", "ATE"],
        default="overlap",
        help="registry weights: overlap (default) or stabilised inverse-probability (ATE)",
    )
    p.add_argument(
        "--ps-model",
        choices=["pairwise", "multinomial"],
        default="pairwise",
        help="registry propensity model: one logistic model per combination vs the reference "
        "(default; overlap weights balance exactly) or one multinomial model of all modalities",
    )
    p.add_argument(
        "--published",
        action="store_true",
        help="also add the shipped published trials (real trials only, each with its citation)",
    )
    p.add_argument(
        "--by-body-site",
        action="store_true",
        help="compare within each indication and body site (e.g. acne scars: face, back)",
    )
    p.add_argument(
        "--responder-model",
        choices=["gee", "glmm"],
        default="gee",
        help="trials' responder odds ratio: GEE (marginal, default) or GLMM (conditional)",
    )
    p.add_argument(
        "--grade-model",
        choices=["clmm"],
        default=None,
        help="add the qualitative grade (gb_qual) odds ratio from a cumulative-logit mixed model",
    )
    # --- power (planning the next trial) ---
    p = add(
        "power",
        _power,
        "power and sample size of a split-face or parallel trial, by simulation",
        "outcomes power --n 5,8,10,15 --reps 1000 --jobs 2 --store runs/power1",
    )
    p.add_argument(
        "--design",
        choices=["split_body", "parallel"],
        default="split_body",
        help="split-face (each patient is their own control) or parallel arms",
    )
    p.add_argument(
        "--n", default="5,6,8,10,12,15,20", help="patients per arm to simulate, comma-separated"
    )
    p.add_argument("--reps", type=int, default=1000, help="simulated trials per size")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same results)")
    p.add_argument(
        "--effect",
        type=float,
        help="true difference at the primary visit, score points (default: calibrated)",
    )
    p.add_argument("--visit-days", help="assessment days, comma-separated, from 0")
    p.add_argument("--primary-day", type=int, help="day of the primary comparison (default: last)")
    p.add_argument("--dropout", type=float, help="probability a patient is lost (default 0.15)")
    p.add_argument(
        "--missed-visit", type=float, help="probability of missing an intermediate visit (0.05)"
    )
    p.add_argument("--sd-unit", type=float, help="SD of the side's random intercept (split-face)")
    p.add_argument("--sd-residual", type=float, help="residual SD (before rounding)")
    p.add_argument(
        "--analysis",
        choices=["lmm", "t-test", "mmrm", "interval", "responder"],
        default="lmm",
        help="analysis of each trial: LMM contrast at the primary visit, t-test there, MMRM "
        "(unstructured, baseline-adjusted, one outcomes.mmrm fit per trial), time to "
        "a full result (>= 50%% improvement) interval-censored on the visit grid (Weibull), or "
        "responders at the primary visit (exact McNemar for split-face, Fisher for parallel)",
    )
    p.add_argument(
        "--ddf",
        choices=["satterthwaite", "kenward-roger"],
        default="satterthwaite",
        help="LMM and MMRM degrees of freedom",
    )
    p.add_argument(
        "--time",
        choices=["linear", "categorical"],
        default="linear",
        help="LMM mean over time: linear in weeks or one mean per visit",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level")
    p.add_argument("--target", type=float, default=0.8, help="power to reach (default 0.8)")
    p.add_argument("--no-null", action="store_true", help="skip the null scenario (type I error)")
    p.add_argument(
        "--interval",
        choices=["wilson", "exact"],
        default="wilson",
        help="Monte Carlo interval of power and type I error",
    )
    p.add_argument(
        "--backend",
        choices=["serial", "joblib", "dask"],
        default="serial",
        help="run trials one after another, in local processes, or on Dask",
    )
    p.add_argument("--jobs", type=int, help="local worker processes (default: all cores)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (tcp://host:8786); implies --backend dask",
    )
    p.add_argument(
        "--store", help="folder for results as they arrive; the same folder resumes a run"
    )
    p.add_argument("--out", help="folder for power_summary.csv, design.csv, power_curve.png")
    # --- report (Quarto reports) ---
    p = add(
        "report",
        _report,
        "render a report (trial, registry, comparison or a .qmd file) to HTML, PDF and Word",
        "outcomes report trial -P store=demo/outcomes.duckdb -P snapshot=1 --to html,pdf,docx",
    )
    p.add_argument("name", help="report name in the reports folder, or a .qmd file")
    p.add_argument(
        "-P",
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="report parameter (repeatable): store, snapshot, study, indication, outcome, ...",
    )
    p.add_argument("--to", default="html,pdf,docx", help="formats, comma-separated")
    p.add_argument("--out", default=".", help="folder for the rendered files (default: .)")
    p.add_argument("--reports", default="reports", help="folder of the reports (default: reports)")
    p.add_argument(
        "--engine",
        choices=["auto", "quarto", "builtin"],
        default="auto",
        help="quarto when installed (auto), or the built-in renderer",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail if a cell writes a warning while rendering"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. User errors print a message, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from outcomes.data.safety import wrap_std_streams

    streams = wrap_std_streams()  # control characters from data never reach the terminal
    try:
        return int(args.func(args))
    except OutcomesError as err:
        print(f"outcomes {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`outcomes quarantine | head`): be quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        return 141  # as a Unix tool killed by SIGPIPE (128 + 13)
    except OSError as err:  # disk full, permissions, a file vanishing: the system's own words
        where = f"{err.filename}: " if err.filename else ""
        print(f"outcomes {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(
            f"outcomes {args.command}: internal error: {type(err).__name__}: {err}\n"
            "This is a bug in outcomes: please report it with the command you ran "
            "(add --debug for the details).",
            file=sys.stderr,
        )
        return 1
    finally:
        sys.stdout, sys.stderr = streams


if __name__ == "__main__":
    sys.exit(main())
