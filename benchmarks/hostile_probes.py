"""Hostile and careless inputs through the CLI, as a user would try them (issue 13).

Each probe builds its files by hand in a fresh folder, runs ``outcomes ...`` (``main()`` in
this process, its output captured, so a probe takes a second rather than an import) and
checks what a user is owed: no internal error (exit 1), nothing lost or altered, no
identifier stored, no formula or terminal escape passed through, a clear message.

Run with the toolkit on ``PYTHONPATH`` to compare versions::

    python benchmarks/hostile_probes.py              # this checkout
    PYTHONPATH=/tmp/old python benchmarks/hostile_probes.py

Prints one line per probe and the number that pass.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import duckdb

VALID = Path(__file__).resolve().parents[1] / "tests" / "data" / "valid"
PROBES: dict[str, Callable[[Path], bool]] = {}


def probe(func: Callable[[Path], bool]) -> Callable[[Path], bool]:
    PROBES[func.__name__] = func
    return func


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``outcomes ARGS`` with its exit code, standard output and error."""
    from outcomes.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        except Exception:  # a traceback reaching the user
            traceback.print_exc(file=err)
            code = 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def valid_feeds(tmp: Path, *skip: str) -> Path:
    feeds = tmp / "feeds"
    feeds.mkdir()
    for f in VALID.glob("*.csv"):
        if f.stem not in skip:
            shutil.copy(f, feeds)
    return feeds


def query(store: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def store_text(store: Path) -> str:
    """Every value of every table of a store, as one text (to look for planted values)."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        return "\n".join(str(con.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names)
    finally:
        con.close()


def ok(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode != 1 and "Traceback" not in r.stderr and "internal error" not in r.stderr


# ---- IDs as written ----------------------------------------------------------------------


@probe
def leading_zero_ids(tmp: Path) -> bool:
    feeds = tmp / "f"
    feeds.mkdir()
    (feeds / "studies.csv").write_text(
        "study_id,title,design,registration_id\n007,T,parallel,12345678901234567890\n"
    )
    (feeds / "subjects.csv").write_text(
        "study_id,subject_id,site_id,age,sex,phototype,indication\n"
        "007,0001,007,30,female,III,acne_scars\n007,0002,010,31,male,II,acne_scars\n"
    )
    (feeds / "units.csv").write_text(
        "study_id,unit_id,subject_id,body_site,side,modality,randomised\n"
        "007,0001-L,0001,face,whole,MN,false\n"
    )
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    if not ok(r) or r.returncode != 0:
        return False
    subj = query(tmp / "s.duckdb", "SELECT subject_id, site_id FROM subjects ORDER BY 1")
    reg = query(tmp / "s.duckdb", "SELECT study_id, registration_id FROM studies")
    return subj == [("0001", "007"), ("0002", "010")] and reg == [("007", "12345678901234567890")]


@probe
def big_integer_is_a_row_error(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    text = (feeds / "subjects.csv").read_text().splitlines()
    text[1] = text[1].replace(",31,", ",99999999999999999999,")
    (feeds / "subjects.csv").write_text("\n".join(text) + "\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 3 and "age" in r.stdout


# ---- the store path ----------------------------------------------------------------------


def _not_a_store(tmp: Path, name: str, content: bytes) -> bool:
    feeds = valid_feeds(tmp)
    target = tmp / name
    target.write_bytes(content)
    r = run("ingest", feeds, "--store", target)
    return ok(r) and r.returncode == 2 and target.read_bytes() == content and name in r.stderr


@probe
def store_is_csv(tmp: Path) -> bool:
    return _not_a_store(tmp, "data.csv", b"a,b\n1,2\n")


@probe
def store_is_parquet(tmp: Path) -> bool:
    return _not_a_store(tmp, "data.parquet", b"PAR1" + b"\0" * 40 + b"PAR1")


@probe
def store_is_json(tmp: Path) -> bool:
    return _not_a_store(tmp, "data.json", b'{"a": 1}')


@probe
def store_corrupted(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    store = tmp / "s.duckdb"
    run("ingest", feeds, "--store", store)
    data = bytearray(store.read_bytes())
    for i in range(4096, min(len(data), 40000), 7):
        data[i] = (data[i] + 91) % 256
    store.write_bytes(bytes(data))
    results = [run(cmd, "--store", store) for cmd in ("summary", "snapshots", "quarantine")]
    results.append(run("ingest", feeds, "--store", store))
    return all(ok(r) for r in results)


@probe
def store_in_missing_folder(tmp: Path) -> bool:
    r = run("ingest", valid_feeds(tmp), "--store", tmp / "nope" / "s.duckdb")
    return ok(r) and r.returncode == 2


# ---- re-sending --------------------------------------------------------------------------


@probe
def children_before_parents_then_resent(tmp: Path) -> bool:
    feeds = valid_feeds(tmp, "units", "sessions", "assessments", "adverse_events")
    kids = tmp / "kids"
    kids.mkdir()
    for name in ("units", "sessions", "assessments", "adverse_events"):
        shutil.copy(VALID / f"{name}.csv", kids)
    store = tmp / "s.duckdb"
    ordered = tmp / "first"
    ordered.mkdir()
    shutil.copy(VALID / "studies.csv", ordered)
    run("ingest", ordered, "--store", store)
    r1 = run("ingest", kids, "--store", store)  # no subjects yet: orphans
    run("ingest", feeds, "--store", store)  # the parents
    r2 = run("ingest", kids, "--store", store)  # re-sent
    n_units = len((VALID / "units.csv").read_text().splitlines()) - 1
    stored = query(store, "SELECT count(*) FROM units")[0][0]
    return ok(r1) and ok(r2) and r1.returncode == 3 and r2.returncode == 0 and stored == n_units


@probe
def fixed_mapping_resent(tmp: Path) -> bool:
    feeds = valid_feeds(tmp, "assessments")
    store = tmp / "s.duckdb"
    run("ingest", feeds, "--store", store)
    site = tmp / "site"
    site.mkdir()
    text = (VALID / "assessments.csv").read_text().replace(",investigator,", ",INV,")
    (site / "assessments.csv").write_text(text)
    mapping = site / "assessments.csv.mapping.yaml"
    mapping.write_text("values: {rater_role: {INVESTIGATOR: investigator}}\n")  # wrong case
    r1 = run("ingest", site, "--store", store)
    mapping.write_text("values: {rater_role: {INV: investigator}}\n")
    r2 = run("ingest", site, "--store", store)
    n = len(text.splitlines()) - 1
    return (
        r1.returncode == 3
        and r2.returncode == 0
        and query(store, "SELECT count(*) FROM assessments")[0][0] == n
    )


@probe
def identical_resend_writes_no_snapshot(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    store = tmp / "s.duckdb"
    run("ingest", feeds, "--store", store)
    r = run("ingest", feeds, "--store", store)
    return ok(r) and r.returncode == 0 and query(store, "SELECT count(*) FROM snapshots")[0][0] == 1


# ---- identifiers -------------------------------------------------------------------------

PLANTED = [
    ("studies", "title", "Contact jane.doe@example.org"),
    ("studies", "registration_id", "078-05-1120"),
    ("subjects", "site_id", "+44 20 7946 0958"),
    ("assessments", "rater_id", "Smith, John"),
    ("assessments", "visit", "AB 12 34 56 C"),
    ("adverse_events", "term", "call 0171 555 1234"),
    ("studies", "title", "Trial run by Dr Mueller"),
    ("studies", "title", "Mrs Jones, tel 555-867-5309"),
    ("units", "unit_id", "x@y.com"),
]


def _plant(tmp: Path, table: str, column: str, value: str) -> Path:
    feeds = valid_feeds(tmp)
    lines = (feeds / f"{table}.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index(column)] = f'"{value}"'
    lines[1] = ",".join(cells)
    (feeds / f"{table}.csv").write_text("\n".join(lines) + "\n")
    return feeds


def _identifier_probe(table: str, column: str, value: str) -> Callable[[Path], bool]:
    def check(tmp: Path) -> bool:
        feeds = _plant(tmp, table, column, value)
        store = tmp / "s.duckdb"
        r = run("ingest", feeds, "--store", store)
        q = run("quarantine", "--store", store, "--out", tmp / "q.csv")
        e = run("export", "--store", store, "--table", table, "--out", tmp / "e.csv")
        texts = [store_text(store), r.stdout, (tmp / "q.csv").read_text()]
        texts.append((tmp / "e.csv").read_text() if (tmp / "e.csv").exists() else "")
        return ok(r) and ok(q) and ok(e) and not any(value in t for t in texts)

    return check


for _t, _c, _v in PLANTED:
    PROBES[f"identifier_value_{_t}_{_c}_{_v[:12]}"] = _identifier_probe(_t, _c, _v)

NAMES = [
    "zip",
    "postal_code",
    "hospital_number",
    "nhsno",
    "national_id",
    "forename",
    "year_of_birth",
    "Geburtsdatum",
    "PLZ",
    "Vorname",
    "telefono",
    "courriel",
    "HospNo",
    "codice_fiscale",
    "apellidos",
    "prenom",
    "date_naissance",
    "Straße",
]


def _name_probe(name: str) -> Callable[[Path], bool]:
    def check(tmp: Path) -> bool:
        feeds = valid_feeds(tmp)
        text = (feeds / "subjects.csv").read_text().replace("site_id", name, 1)
        (feeds / "subjects.csv").write_text(text)
        (feeds / "subjects.csv.mapping.yaml").write_text(f"columns: {{{name}: site_id}}\n")
        r = run("ingest", feeds, "--store", tmp / "s.duckdb")
        return ok(r) and r.returncode == 4 and "identifier" in r.stdout

    return check


for _n in NAMES:
    PROBES[f"identifier_name_{_n}"] = _name_probe(_n)


# ---- injection ---------------------------------------------------------------------------


@probe
def export_neutralises_formulas(tmp: Path) -> bool:
    feeds = _plant(tmp, "studies", "title", "=1+2 cmd|' /C calc'!A0")
    store = tmp / "s.duckdb"
    run("ingest", feeds, "--store", store)
    r = run("export", "--store", store, "--table", "studies", "--out", tmp / "e.csv")
    text = (tmp / "e.csv").read_text()
    return ok(r) and ",=1+2" not in text and ",'=1+2" in text


@probe
def quarantine_out_neutralises_formulas(tmp: Path) -> bool:
    feeds = _plant(tmp, "subjects", "sex", "@SUM(1+1)")
    store = tmp / "s.duckdb"
    run("ingest", feeds, "--store", store)
    r = run("quarantine", "--store", store, "--out", tmp / "q.csv")
    cells = [c for line in (tmp / "q.csv").read_text().splitlines() for c in line.split(",")]
    return ok(r) and not any(c.startswith(("@", "=", "+", "-", '"@', '"=')) for c in cells)


@probe
def terminal_escapes_not_printed(tmp: Path) -> bool:
    feeds = _plant(tmp, "subjects", "sex", "\x1b[2J\x1b]0;pwned\x07")
    store = tmp / "s.duckdb"
    r1 = run("ingest", feeds, "--store", store)
    r2 = run("quarantine", "--store", store)
    return all(ok(r) and "\x1b" not in r.stdout + r.stderr for r in (r1, r2))


@probe
def escapes_in_file_names(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "x\x1b[31m_subjects.csv").write_text("garbage\n\x00\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and "\x1b" not in r.stdout + r.stderr


# ---- bad input: exit codes and messages --------------------------------------------------


@probe
def duplicate_column_names(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    text = (feeds / "subjects.csv").read_text().replace("end_reason", "age", 1)
    (feeds / "subjects.csv").write_text(text)
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    studies = (
        query(tmp / "s.duckdb", "SELECT count(*) FROM studies")[0][0]
        if (tmp / "s.duckdb").exists()
        else 0
    )
    return ok(r) and r.returncode == 4 and "age" in r.stdout and studies > 0


@probe
def mapping_wrong_shape(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "subjects.csv.mapping.yaml").write_text("columns: [site_id, age]\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4 and "columns" in r.stdout


@probe
def mapping_is_a_list(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "subjects.csv.mapping.yaml").write_text("- a\n- b\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4


@probe
def two_sources_one_target(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    text = (feeds / "subjects.csv").read_text().replace("site_id", "clinic", 1)
    text = text.replace("end_reason", "centre", 1)
    (feeds / "subjects.csv").write_text(text)
    (feeds / "subjects.csv.mapping.yaml").write_text(
        "columns: {clinic: site_id, centre: site_id}\n"
    )
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4 and "site_id" in r.stdout


@probe
def export_into_missing_folder(tmp: Path) -> bool:
    store = tmp / "s.duckdb"
    run("ingest", valid_feeds(tmp), "--store", store)
    r = run("export", "--store", store, "--table", "units", "--out", tmp / "no" / "u.csv")
    return ok(r) and r.returncode == 2


@probe
def quarantine_into_missing_folder(tmp: Path) -> bool:
    store = tmp / "s.duckdb"
    run("ingest", valid_feeds(tmp), "--store", store)
    r = run("quarantine", "--store", store, "--out", tmp / "no" / "q.csv")
    return ok(r) and r.returncode == 2


@probe
def simulate_negative_seed(tmp: Path) -> bool:
    r = run("simulate", "trial", "--seed", "-1", "--out", tmp / "sim")
    return ok(r) and r.returncode == 2


@probe
def not_utf8(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "subjects.csv").write_bytes((feeds / "subjects.csv").read_bytes() + b"T1,S\xe9,A,30\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4 and "UTF-8" in r.stdout


@probe
def nul_bytes(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "units.csv").write_bytes((feeds / "units.csv").read_bytes() + b"T1,\x00,x\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4


@probe
def ragged_row(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "units.csv").write_text((feeds / "units.csv").read_text() + "T1,S9-L,S9\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4 and "line" in r.stdout


@probe
def empty_file(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "sessions.csv").write_bytes(b"")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4


# ---- skips -------------------------------------------------------------------------------


@probe
def skipped_files_are_named(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    for name in ("extra_units.csv.gz", "more_units.tsv", "macro_units.xlsm"):
        (feeds / name).write_bytes(b"x")
    (feeds / "site2").mkdir()
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and all(
        n in r.stdout for n in ("extra_units.csv.gz", "more_units.tsv", "macro_units.xlsm", "site2")
    )


@probe
def empty_folder_strict(tmp: Path) -> bool:
    (tmp / "empty").mkdir()
    r1 = run("ingest", tmp / "empty", "--store", tmp / "s.duckdb", "--strict")
    r2 = run("ingest", tmp / "empty", "--store", tmp / "s.duckdb")
    return ok(r1) and r1.returncode != 0 and ok(r2) and "no feed" in r2.stdout


@probe
def extra_excel_sheets_named(tmp: Path) -> bool:
    import pandas as pd

    feeds = tmp / "f"
    feeds.mkdir()
    with pd.ExcelWriter(feeds / "studies.xlsx") as w:
        pd.read_csv(VALID / "studies.csv", dtype=str).to_excel(w, sheet_name="data", index=False)
        pd.DataFrame({"a": [1]}).to_excel(w, sheet_name="more_rows", index=False)
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and "more_rows" in r.stdout


# ---- smaller -----------------------------------------------------------------------------


@probe
def row_numbers_after_blank_and_multiline(tmp: Path) -> bool:
    feeds = tmp / "f"
    feeds.mkdir()
    (feeds / "studies.csv").write_text(
        'study_id,title,design\n\nA,"two\nlines",parallel\n\nB,ok,crossover\n'
    )
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    # B is on line 6: row 5
    return ok(r) and "row 5" in r.stdout


@probe
def constant_overwriting_feed(tmp: Path) -> bool:
    feeds = valid_feeds(tmp)
    (feeds / "subjects.csv.mapping.yaml").write_text("constants: {site_id: Z}\n")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb")
    return ok(r) and r.returncode == 4 and "site_id" in r.stdout


@probe
def required_text_na_markers(tmp: Path) -> bool:
    good = 0
    for marker in ("NA", "n/a", ".", "NULL"):
        sub = tmp / marker.replace("/", "_").replace(".", "dot")
        sub.mkdir()
        feeds = _plant(sub, "studies", "title", marker)
        r = run("ingest", feeds, "--store", sub / "s.duckdb")
        good += ok(r) and r.returncode == 3
    return good == 4


@probe
def strict_creates_no_store(tmp: Path) -> bool:
    feeds = _plant(tmp, "subjects", "sex", "x")
    r = run("ingest", feeds, "--store", tmp / "s.duckdb", "--strict")
    return ok(r) and r.returncode == 5 and not (tmp / "s.duckdb").exists()


@probe
def other_dictionary_warns(tmp: Path) -> bool:
    store = tmp / "s.duckdb"
    run("ingest", valid_feeds(tmp, "assessments"), "--store", store)
    con = duckdb.connect(str(store))
    con.execute("UPDATE snapshots SET dictionary_sha256 = 'abc', dictionary_version = '0.9'")
    con.close()
    more = tmp / "more"
    more.mkdir()
    shutil.copy(VALID / "assessments.csv", more)
    r = run("ingest", more, "--store", store)
    return ok(r) and "0.9" in r.stdout


def main() -> int:
    passed = 0
    for name, func in PROBES.items():
        with tempfile.TemporaryDirectory() as d:
            try:
                good = bool(func(Path(d)))
            except Exception as err:  # a probe that cannot even finish counts as failing
                good = False
                name += f" ({type(err).__name__}: {err})"[:120]
        passed += good
        print(f"{'pass' if good else 'FAIL'}  {name}")
    print(f"{passed} of {len(PROBES)} probes pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
