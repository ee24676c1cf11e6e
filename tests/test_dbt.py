"""The dbt project on a real SQLite warehouse (and DuckDB attaching it): builds, tests, atomic rebuilds, docs."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from xrh.dbt import run_dbt
from xrh.warehouse import connect

MARTS = ("acquisition", "scanners", "study_stays", "cohort_images", "experiment_cohorts", "study_labels")


def test_build_creates_every_mart_and_passes_every_test(built, simulated):
    _, summary = simulated
    with connect(built.warehouse, readonly=True) as conn:
        for mart in MARTS:
            assert conn.execute(f"select count(*) from {mart}").fetchone()[0] > 0, mart
        assert conn.execute("select count(*) from acquisition").fetchone()[0] == summary.images
        assert conn.execute("select count(*) from cohort_images where in_mimiciv = 0").fetchone()[0] > 0
        groups = dict(conn.execute("select energy_group, count(*) from acquisition group by 1").fetchall())
        assert {"D90", "D110", "S120", "unknown"} <= set(groups)
        labels = dict(
            conn.execute(
                "select label, count(*) from experiment_cohorts where cohort_name = 'scanner_d110_vs_s120' group by 1"
            ).fetchall()
        )
        assert set(labels) == {0, 1}
        shared = conn.execute(
            "select count(*) from (select subject_id from experiment_cohorts where cohort_name = 'scanner_d110_vs_s120'"
            " group by subject_id having count(distinct label) > 1)"
        ).fetchone()[0]
        assert shared == 0, "patients in both groups are removed from the larger group"
        assert conn.execute("select count(*) from sqlite_master where name like '%xrh_new'").fetchone()[0] == 0


def test_study_links_match_the_simulated_stays(built):
    with connect(built.warehouse, readonly=True) as conn:
        statuses = dict(conn.execute("select link_status, count(*) from study_stays group by 1").fetchall())
    # The simulator places every study inside an ED stay or an admission of its subject.
    assert set(statuses) <= {"admission", "ED stay", "subject not in MIMIC-IV"}
    assert statuses.get("admission", 0) > 0 and statuses.get("ED stay", 0) > 0


def test_marts_are_never_missing_or_partial_during_a_rebuild(built):
    counts = {}
    with connect(built.warehouse, readonly=True) as conn:
        for mart in MARTS:
            counts[mart] = conn.execute(f"select count(*) from {mart}").fetchone()[0]
    errors, seen, stop = [], set(), threading.Event()

    def poll():
        with connect(built.warehouse, readonly=True) as reader:
            while not stop.is_set():
                for mart in MARTS:
                    try:
                        seen.add((mart, reader.execute(f"select count(*) from {mart}").fetchone()[0]))
                    except sqlite3.Error as error:
                        errors.append(f"{mart}: {error}")

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        assert run_dbt(built, ["run"])
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen == set(counts.items()), "a reader saw a partial table"


def test_duckdb_target_builds_the_same_project(built):
    assert run_dbt(built, ["build", "--target", "duckdb"], target="duckdb")


def test_docs_generate(built):
    assert run_dbt(built, ["docs", "generate"])


@pytest.mark.parametrize("scheme", ["standard", "balanced"])
def test_splits_are_patient_level_deterministic_and_weighted(built, scheme):
    from models_ml.splits import split_cohort

    with connect(built.warehouse) as conn:
        first = split_cohort(conn, "scanner_d110_vs_s120", scheme=scheme, seed=3, run_id="test")
        rows = conn.execute("select dicom_id, split from ml_dataset_splits order by 1").fetchall()
        again = split_cohort(conn, "scanner_d110_vs_s120", scheme=scheme, seed=3, run_id="test")
        assert conn.execute("select dicom_id, split from ml_dataset_splits order by 1").fetchall() == rows
    assert first == again and first.subjects_in_two_splits == 0
    if scheme == "balanced":
        train = {label: n for (label, split), n in first.images.items() if split == "train"}
        assert abs(train[0] - train[1]) <= max(3, 0.2 * max(train.values()))


def test_patients_with_images_in_two_label_groups_stay_in_one_split(built):
    from models_ml.splits import split_cohort

    with connect(built.warehouse) as conn:
        mixed = conn.execute(
            "select count(*) from (select subject_id from experiment_cohorts where cohort_name = 'abnormal_vs_healthy'"
            " group by subject_id having count(distinct label) > 1)"
        ).fetchone()[0]
        counts = split_cohort(conn, "abnormal_vs_healthy", seed=3, run_id="test")
        with pytest.raises(ValueError, match="balanced scheme needs each patient in one group"):
            split_cohort(conn, "abnormal_vs_healthy", scheme="balanced", seed=3, run_id="test")
    assert mixed > 0 and counts.subjects_in_two_splits == 0


def test_split_of_an_unknown_cohort_is_a_clear_error(built):
    from models_ml.splits import split_cohort

    with connect(built.warehouse) as conn, pytest.raises(ValueError, match="cohort 'nope' has no images"):
        split_cohort(conn, "nope", run_id="test")
