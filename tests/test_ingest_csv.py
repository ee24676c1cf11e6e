"""CSV loads: typed STRICT raw tables, skip-unchanged, clear errors that leave tables as they were, fix-up rules."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from ingest.csv_load import CsvLoadError, check_release_counts, load_csv_tables
from ingest.schemas import RAW_TABLES_FILE, load_spec
from tests.conftest import FILES
from xrh.cli import main
from xrh.warehouse import connect

PATIENTS = "mimiciv/3.1/hosp/patients.csv.gz"
HEADER = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"


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
    ],
)
def test_bad_values_name_file_line_column_and_leave_the_table_as_it_was(tree, tmp_path, body, message):
    warehouse = tmp_path / "w.sqlite"
    load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        before = conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall()
    write_patients(tree, body)
    with pytest.raises(CsvLoadError, match=message):
        load(tree, warehouse, tables=["raw_mimiciv_hosp__patients"])
    with connect(warehouse) as conn:
        assert conn.execute("select * from raw_mimiciv_hosp__patients order by subject_id").fetchall() == before
        progress = conn.execute("select rows from raw_load_progress where source_file = ?", (PATIENTS,)).fetchone()
        assert progress == (len(before),)


def test_header_that_differs_from_the_spec(tree, tmp_path):
    with gzip.open(tree / PATIENTS, "wt") as handle:
        handle.write("subject_id,sex,anchor_age,anchor_year,anchor_year_group,dod\n10000001,F,40,2150,2011 - 2013,\n")
    with pytest.raises(
        CsvLoadError,
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
