"""CSV loads: typed STRICT raw tables, skip-unchanged, clear errors that leave tables as they were, fix-up rules;
damaged files (cut-short gzip, over-long rows, impossible dates, FIFOs and folders in place of files) refused one by
one while the run's other files load."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import signal
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.csv_load import CsvLoadFailed, check_release_counts, load_csv_tables
from ingest.schemas import RAW_TABLES_FILE, load_spec
from tests.conftest import FILES
from xrh.cli import main
from xrh.warehouse import connect

PATIENTS = "mimiciv/3.1/hosp/patients.csv.gz"
HEADER = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
SERVICES = "mimiciv/3.1/hosp/services.csv.gz"
PROVIDER = "mimiciv/3.1/hosp/provider.csv.gz"
SMALL_ROW_CAP = 1 << 16  # bytes: lets a test's over-long row be small


@pytest.fixture()
def tree(simulated, tmp_path) -> Path:
    """A private copy of the simulated release's CSVs (no DICOM files), safe to modify."""
    root, _ = simulated
    files = tmp_path / "physionet.org/files"
    for project in ("mimiciv/3.1", "mimic-cxr-jpg/2.1.0"):
        shutil.copytree(root / FILES / project, files / project)
    for name in ("cxr-record-list.csv.gz", "cxr-study-list.csv.gz", "cxr-provider-list.csv.gz"):
        (files / "mimic-cxr/2.1.0").mkdir(parents=True, exist_ok=True)
        shutil.copy(root / FILES / "mimic-cxr/2.1.0" / name, files / "mimic-cxr/2.1.0" / name)
    return files


def write_patients(files: Path, body: str) -> None:
    with gzip.open(files / PATIENTS, "wt") as handle:
        handle.write(HEADER + body)


def many_patients(count: int) -> str:
    return "".join(f"{10000000 + i},F,40,2150,2011 - 2013,\n" for i in range(count))


@contextmanager
def deadline(seconds: float):
    """Fail the test if the block is still running after ``seconds`` (a blocking open of a FIFO included)."""

    def expire(signum, frame):
        pytest.fail(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load(files: Path, warehouse: Path, spec=None, **options):
    spec = spec or load_spec()
    with connect(warehouse) as conn:
        return load_csv_tables(conn, warehouse, files, spec, **options)


def csv_rows(files: Path, relative: str) -> int:
    with gzip.open(files / relative, "rt") as handle:
        return sum(1 for _ in handle) - 1


def test_loads_every_table_typed_with_lineage(tree, tmp_path):
    warehouse = tmp_path / "w.sqlite"
    results = load(tree, warehouse)
    assert {r.status for r in results} == {"loaded"}
    with connect(warehouse) as conn:
        for result in results:
            count = conn.execute(f"select count(*) from {result.table}").fetchone()[0]
            assert count == csv_rows(tree, result.file) == result.rows
        types = conn.execute(
            "select typeof(subject_id), typeof(hadm_id), typeof(careunit), _source_file"
            " from raw_mimiciv_hosp__transfers"
            " where eventtype = 'ed' and hadm_id is null limit 1"
        ).fetchone()
        assert types == ("integer", "null", "text", "mimiciv/3.1/hosp/transfers.csv.gz")
        label = conn.execute('select typeof("No Finding") from raw_mimic_cxr_jpg__chexpert where "No Finding" = 1')
        assert label.fetchone()[0] == "real"
        assert conn.execute(
            "select strict from pragma_table_list where name = 'raw_mimiciv_hosp__patients'"
        ).fetchone()[0]


def test_unchanged_files_are_skipped_and_changed_ones_replace_their_rows(tree, tmp_path):
    warehouse = tmp_path / "w.sqlite"
    load(tree, warehouse)
    assert {r.status for r in load(tree, warehouse)} == {"unchanged"}
    (tree / PATIENTS).touch()  # new mtime, same bytes: recognized by its SHA-256
    assert {r.status for r in load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])} == {"unchanged"}
    write_patients(tree, "10000001,F,40,2150,2011 - 2013,\n10000002,M,91,2160,2014 - 2016,2162-01-02\n")
    (result,) = load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    assert (result.status, result.rows) == ("loaded", 2)
    with connect(warehouse) as conn:
        assert conn.execute("select subject_id, dod from raw_mimiciv_hosp__patients order by 1").fetchall() == [
            (10000001, None),
            (10000002, "2162-01-02"),
        ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "10000001,F,forty,2150,2011 - 2013,\n",
            r"patients.csv.gz line 2, column 'anchor_age': not an integer \(value 'forty'\)",
        ),
        (
            "10000001,F,40,2150,2011 - 2013,\n10000002,M,50,2150,2011 - 2013,02/01/2160\n",
            r"line 3, column 'dod': not a date 'YYYY-MM-DD' \(value '02/01/2160'\)",
        ),
        (
            "10000001,F,40,2150,2011 - 2013,\n10000001,M,50,2150,2011 - 2013,\n",
            r"line 3: duplicate primary key \(subject_id=10000001\)",
        ),
        ("10000001,,40,2150,2011 - 2013,\n", r"line 2, column 'gender': missing value in a required column"),
        (
            "10000001,None,40,2150,2011 - 2013,\n",
            r"column 'gender': null-like value in a required column \(rule null_like_strings\) \(value 'None'\)",
        ),
        ("10000001,F,40,2150\n", r"line 2: expected 6 fields, found 4"),
        *(
            (
                f"10000001,F,40,2150,2011 - 2013,2152-02-29\n10000002,F,40,2150,2011 - 2013,{date}\n",
                rf"line 3, column 'dod': not a date 'YYYY-MM-DD' on the calendar \(month 01-12, .*\(value '{date}'\)",
            )
            for date in ("2150-13-01", "2150-02-30", "2151-02-29", "2150-04-31", "2150-00-10")
        ),
    ],
)
def test_bad_values_name_file_line_column_and_leave_the_table_as_it_was(tree, tmp_path, body, message):
    warehouse = tmp_path / "w.sqlite"
    load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        before = conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall()
    write_patients(tree, body)
    with pytest.raises(CsvLoadFailed, match=message):
        load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        assert conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall() == before
        progress = conn.execute("select rows from raw_load_progress where source_file = ?", (PATIENTS,)).fetchone()
        assert progress == (len(before),)


def test_header_that_differs_from_the_spec(tree, tmp_path):
    with gzip.open(tree / PATIENTS, "wt") as handle:
        handle.write("subject_id,sex,anchor_age,anchor_year,anchor_year_group,dod\n10000001,F,40,2150,2011 - 2013,\n")
    with pytest.raises(
        CsvLoadFailed,
        match=r"patients.csv.gz line 1: header differs.*missing \['gender'\].*"
        r"unexpected \['sex'\]",
    ):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"])


def test_null_like_strings_in_nullable_columns_become_null_and_are_counted(tree, tmp_path):
    warehouse = tmp_path / "w.sqlite"
    write_patients(
        tree,
        "10000001,F,40,2150,2011 - 2013,nan\n10000002,M,50,2150,2011 - 2013,n/a\n"
        "10000003,M,60,2150,2011 - 2013,2151-01-01\n",
    )
    (result,) = load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    assert result.fixups == {("null_like_strings", "dod"): 2}
    with connect(warehouse) as conn:
        assert conn.execute("select count(*) from raw_mimiciv_hosp__patients where dod is null").fetchone()[0] == 2
        assert conn.execute("select rule, column_name, count from raw_load_fixups").fetchall() == [
            ("null_like_strings", "dod", 2)
        ]


def test_release_counts_and_extra_specs(tree, tmp_path):
    extra = tmp_path / "labitems.yaml"
    extra.write_text(
        "tables:\n  raw_mimiciv_hosp__d_labitems:\n    file: mimiciv/3.1/hosp/d_labitems.csv.gz\n"
        "    release_rows: 2\n    primary_key: [itemid]\n    columns:\n"
        "      - {name: itemid, type: integer, required: true}\n      - {name: label, type: text}\n"
    )
    with gzip.open(tree / "mimiciv/3.1/hosp/d_labitems.csv.gz", "wt") as handle:
        handle.write("itemid,label\n50801,Alveolar-arterial Gradient\n50802,Base Excess\n")
    warehouse = tmp_path / "w.sqlite"
    spec = load_spec(RAW_TABLES_FILE, extra)
    load(tree, warehouse, spec=spec)
    with connect(warehouse) as conn:
        checks = {name: status for name, _, _, status in check_release_counts(conn, spec)}
    assert checks["raw_mimiciv_hosp__d_labitems"] == "matches release"
    assert checks["raw_mimiciv_hosp__patients"] == "differs from release"


def test_cli_expect_full_release_fails_on_a_subset(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("XRH_DATA_ROOT", str(tree.parent.parent))
    monkeypatch.setenv("XRH_WAREHOUSE", str(tmp_path / "w.sqlite"))
    assert main(["ingest", "csv", "--tables", "raw_mimiciv_hosp__provider"]) == 0
    assert main(["ingest", "csv", "--tables", "raw_mimiciv_hosp__provider", "--expect-full-release"]) == 1


@pytest.mark.parametrize(
    "time", ["2150-01-01 25:00:00", "2150-01-01 23:60:00", "2150-13-01 00:00:00", "2151-02-29 12:00:00"]
)
def test_timestamps_off_the_calendar_are_refused(tree, tmp_path, time):
    with gzip.open(tree / SERVICES, "wt") as handle:
        handle.write(
            "subject_id,hadm_id,transfertime,prev_service,curr_service\n"
            "10000001,20000001,2152-02-29 23:59:59,,MED\n"  # a leap day: on the calendar
            f"10000001,20000002,{time},,MED\n"
        )
    with pytest.raises(
        CsvLoadFailed,
        match=rf"services.csv.gz line 3, column 'transfertime': not a timestamp 'YYYY-MM-DD HH:MM:SS' on the calendar"
        rf" \(.*hour 00-23, minute and second 00-59\) \(value '{time}'\); correct the file",
    ):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__services"])


def test_a_gzip_cut_short_is_named_leaves_the_table_and_loads_once_fixed(tree, tmp_path):
    warehouse = tmp_path / "w.sqlite"
    load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        before = conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall()
        progress_before = conn.execute("select * from raw_load_progress").fetchall()
    write_patients(tree, many_patients(20_000))
    whole = (tree / PATIENTS).read_bytes()
    (tree / PATIENTS).write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        CsvLoadFailed,
        match=r"patients.csv.gz line \d+: the gzip stream is cut short or damaged \(.*\); download the file again",
    ):
        load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        assert conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall() == before
        assert conn.execute("select * from raw_load_progress").fetchall() == progress_before

    (tree / PATIENTS).write_bytes(whole)
    (result,) = load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    assert (result.status, result.rows) == ("loaded", 20_000)


def test_a_small_gzip_expanding_to_one_huge_line_is_refused_in_bounded_memory(tree, tmp_path):
    huge = 32 << 20  # 32 MiB of one line, from a gzip of about 32 KiB
    with gzip.open(tree / PATIENTS, "wb") as handle:
        handle.write(HEADER.encode() + b"10000001,")
        for _ in range(huge >> 20):
            handle.write(b"F" * (1 << 20))
    assert (tree / PATIENTS).stat().st_size < huge // 100
    tracemalloc.start()
    try:
        with pytest.raises(CsvLoadFailed, match=r"patients.csv.gz line 2: a row longer than 65,536 bytes"):
            load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"], max_row_bytes=SMALL_ROW_CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * SMALL_ROW_CAP + (1 << 20)  # the explainer never held the line, only about one cap of it


@pytest.mark.parametrize(
    "row",
    [
        f"10000001,F,40,2150,{'x' * SMALL_ROW_CAP},\n",  # one field longer than the cap
        '10000001,F,40,2150,"' + "x\n" * (SMALL_ROW_CAP // 2) + '",\n',  # a quoted field of many short lines
    ],
    ids=["one-line", "quoted-newlines"],
)
def test_a_row_over_the_cap_is_named_by_its_line(tree, tmp_path, row):
    write_patients(tree, many_patients(3) + row)
    with pytest.raises(CsvLoadFailed, match=r"patients.csv.gz line 5: a row longer than 65,536 bytes"):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"], max_row_bytes=SMALL_ROW_CAP)


def test_fields_up_to_the_cap_load_and_are_explained_past(tree, tmp_path):
    """The csv module's default field limit (128 KiB) is not the cap: a 200 KiB field loads, and the row-by-row
    explanation of a later bad row reads past it."""
    long_text = "x" * (200 << 10)
    write_patients(tree, f"10000001,F,40,2150,{long_text},\n")
    (result,) = load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"])
    assert (result.status, result.rows) == ("loaded", 1)
    write_patients(tree, f"10000001,F,40,2150,{long_text},\n10000002,F,forty,2150,x,\n")
    with pytest.raises(CsvLoadFailed, match=r"patients.csv.gz line 3, column 'anchor_age': not an integer"):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"])


@pytest.mark.parametrize(
    ("make", "kind"),
    [(os.mkfifo, r"a FIFO \(named pipe\)"), (os.mkdir, "a directory")],
    ids=["fifo", "directory"],
)
def test_a_fifo_or_folder_in_place_of_a_csv_is_refused_at_once(tree, tmp_path, make, kind):
    (tree / PATIENTS).unlink()
    make(tree / PATIENTS)
    with (
        deadline(30),
        pytest.raises(CsvLoadFailed, match=rf"patients.csv.gz: is {kind}, not a regular file \(/.*\); put the CSV"),
    ):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"])


def test_an_unreadable_csv_is_refused(tree, tmp_path):
    (tree / PATIENTS).chmod(0)
    if os.access(tree / PATIENTS, os.R_OK):
        pytest.skip("this user reads files without read permission (root with CAP_DAC_OVERRIDE)")
    with pytest.raises(CsvLoadFailed, match=r"patients.csv.gz: cannot be read \(Permission denied\); make it"):
        load(tree, tmp_path / "w.sqlite", tables=["raw_mimiciv_hosp__patients"])


def test_bad_files_do_not_stop_the_others_and_the_command_lists_each(tree, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("XRH_DATA_ROOT", str(tree.parent.parent))
    monkeypatch.setenv("XRH_WAREHOUSE", str(tmp_path / "w.sqlite"))
    whole = (tree / PATIENTS).read_bytes()
    (tree / PATIENTS).write_bytes(whole[: len(whole) - 20])  # the gzip trailer and some data cut off
    (tree / PROVIDER).unlink()
    os.mkfifo(tree / PROVIDER)
    with deadline(60), caplog.at_level(logging.ERROR, logger="ingest.cli"):
        assert main(["ingest", "csv"]) == 1
    failures = [record.getMessage() for record in caplog.records if record.name == "ingest.cli"]
    assert len(failures) == 2
    assert failures[0].startswith(PATIENTS) and "gzip stream is cut short" in failures[0]
    assert failures[1].startswith(PROVIDER) and "FIFO" in failures[1]
    assert all("\n" not in failure for failure in failures)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    statuses = dict(line.split()[:2] for line in out.out.splitlines())
    assert statuses.pop("raw_mimiciv_hosp__patients") == statuses.pop("raw_mimiciv_hosp__provider") == "failed"
    assert set(statuses.values()) == {"loaded"}
    with connect(tmp_path / "w.sqlite") as conn:
        loaded = {row[0] for row in conn.execute("select source_file from raw_load_progress")}
        assert PATIENTS not in loaded and PROVIDER not in loaded and len(loaded) == len(statuses)
        assert conn.execute("select status from runs where kind = 'ingest_csv'").fetchone() == ("failed",)
