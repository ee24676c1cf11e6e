"""Headers as real archives write them: the warehouse builds (with warnings), keeps every image once, normalises
sentinels, units and view spellings by its seeds, routes non-chest images out of cohorts, and says so in data_quality.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from ingest.dicom_headers import ingest_dicom_headers
from tests.archive_headers import VARIANTS, write_archive_files
from xrh.dbt import build_warehouse
from xrh.warehouse import connect


@pytest.fixture(scope="module")
def archive_built(ingested, tmp_path_factory):
    """The simulated warehouse plus one file per real-archive header variant, built with dbt."""
    folder = tmp_path_factory.mktemp("archive")
    settings = replace(ingested, warehouse=folder / "warehouse.sqlite", cache_dir=folder / "cache")
    with sqlite3.connect(ingested.warehouse) as source, sqlite3.connect(settings.warehouse) as copy:
        source.backup(copy)
    ids = write_archive_files(folder / "dicom")
    with connect(settings.warehouse) as conn:
        summary = ingest_dicom_headers(conn, folder / "dicom")
    assert summary.rejects == 0
    warnings = build_warehouse(settings)
    return settings, ids, warnings


def acquisition_row(conn, dicom_id: str) -> dict:
    cursor = conn.execute("select * from acquisition where dicom_id = ?", (dicom_id,))
    return dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))


def quality_rules(conn, dicom_id: str) -> set[tuple[str, str]]:
    return set(conn.execute("select column_name, rule from data_quality where dicom_id = ?", (dicom_id,)))


def test_build_passes_with_warnings_and_keeps_every_image_once(archive_built, simulated):
    settings, ids, warnings = archive_built
    _, summary = simulated
    assert any(name.startswith("value_between_stg_dicom__headers_kvp") for name, _ in warnings)
    with connect(settings.warehouse, readonly=True) as conn:
        rows, distinct = conn.execute("select count(*), count(distinct dicom_id) from acquisition").fetchone()
        assert rows == distinct == summary.images + len(VARIANTS)
        assert conn.execute("select count(*) from scanners").fetchone()[0] > 0


@pytest.mark.parametrize(
    ("variant", "expected", "rules"),
    [
        (
            "as_shipped",
            {"kvp": 150.0, "exposure_mas": 2.0, "pixel_spacing_mm": None, "view_position": "PA"},
            {("PixelSpacing", "not_recorded_sentinel")},
        ),
        (
            "kvp_zero",
            {"kvp": None, "kvp_raw": 0.0, "exposure_mas": None, "energy_group": "unknown"},
            {("KVP", "not_recorded_sentinel"), ("Exposure", "not_recorded_sentinel")},
        ),
        ("kvp_negative", {"kvp": None, "kvp_raw": -1.0}, {("KVP", "not_recorded_sentinel")}),
        ("kvp_implausible", {"kvp": None, "kvp_raw": 1100.0}, {("KVP", "outside_physical_range")}),
        ("spacing_zero_imager_spacing_set", {"pixel_spacing_mm": 0.143, "pixel_spacing_raw": 0.0}, set()),
        (
            "exposure_in_uas",
            {"exposure_mas": 2.5, "exposure_mas_source": "ExposureInuAs"},
            {("exposure_mas", "unit_converted")},
        ),
        (
            "exposure_current_times_time",
            {"exposure_mas": 3.2, "exposure_mas_source": "XRayTubeCurrent x ExposureTime"},
            {("exposure_mas", "unit_converted")},
        ),
        ("exposure_microamps_microseconds", {"exposure_mas": 2.0, "exposure_time_ms": 8.0}, set()),
        (
            "view_full_word",
            {"view_position": "PA", "view_position_raw": "POSTERO-ANTERIOR", "view_group": "frontal"},
            {("ViewPosition", "view_spelling_mapped")},
        ),
        ("view_lower_case", {"view_position": "PA", "view_position_source": "ViewPosition spelling"}, set()),
        ("view_left_lateral", {"view_position": "LL", "view_group": "lateral"}, set()),
        ("view_lat", {"view_position": "LATERAL", "view_group": "lateral"}, set()),
        (
            "view_blank_with_code",
            {"view_position": "AP", "view_position_source": "ViewCodeSequence"},
            {("ViewPosition", "view_from_view_code_sequence")},
        ),
        ("view_whitespace_with_code", {"view_position": "LL", "view_position_raw": None}, set()),
        (
            "view_blank_portable",
            {"view_position": "AP", "view_position_source": "PerformedProcedureStepDescription"},
            {("ViewPosition", "view_from_procedure_description")},
        ),
        (
            "view_unknown",
            {"view_position": None, "view_group": "unknown", "view_position_raw": "XYZ"},
            {("ViewPosition", "view_unknown")},
        ),
        (
            "detector_mixed_case",
            {"detector_type": "SCINTILLATOR", "detector_type_raw": "Scintillator"},
            {("DetectorType", "spelling_mapped")},
        ),
        ("detector_not_a_term", {"detector_type": None}, {("DetectorType", "not_a_defined_term")}),
        ("manufacturer_whitespace", {"manufacturer": None, "manufacturer_model": None}, set()),
        ("not_chest_body_part", {"is_chest_radiograph": 0}, {("body_part", "excluded_from_cohorts")}),
        ("not_projection_modality", {"is_chest_radiograph": 0}, {("modality", "excluded_from_cohorts")}),
        ("secondary_capture", {"is_chest_radiograph": 0}, {("sop_class_uid", "excluded_from_cohorts")}),
        ("body_part_other_spelling", {"is_chest_radiograph": 1, "exclusion_reason": None}, set()),
        ("no_kvp_no_view", {"kvp": None, "kvp_raw": None, "view_position": None}, {("ViewPosition", "view_unknown")}),
    ],
)
def test_each_real_archive_spelling_is_normalised_and_traced(archive_built, variant, expected, rules):
    settings, ids, _ = archive_built
    with connect(settings.warehouse, readonly=True) as conn:
        row = acquisition_row(conn, ids[variant])
        assert {key: row[key] for key in expected} == pytest.approx(expected)
        assert rules <= quality_rules(conn, ids[variant])


def test_images_that_are_not_chest_radiographs_are_flagged_with_a_reason(archive_built):
    # That cohorts never take them is the dbt unit test cohorts_take_only_projection_chest_radiographs.
    settings, ids, _ = archive_built
    excluded = [ids[name] for name in ("not_chest_body_part", "not_projection_modality", "secondary_capture")]
    with connect(settings.warehouse, readonly=True) as conn:
        for dicom_id in excluded:
            reason = conn.execute(
                "select exclusion_reason from cohort_images where dicom_id = ? and is_chest_radiograph = 0", (dicom_id,)
            ).fetchone()[0]
            assert "image_routing_rules" in reason
        counted = dict(conn.execute("select rule || '/' || column_name, images from report_data_quality"))
    assert counted["excluded_from_cohorts/body_part"] == 1 and counted["not_recorded_sentinel/KVP"] >= 2


def test_data_quality_rows_name_the_rule_and_value(archive_built):
    settings, ids, _ = archive_built
    with connect(settings.warehouse, readonly=True) as conn:
        raw, reason = conn.execute(
            "select raw_value, reason from data_quality where dicom_id = ? and column_name = 'KVP'",
            (ids["kvp_implausible"],),
        ).fetchone()
    assert float(raw) == 1100.0 and "40.0-150.0 kV" in reason and "IEC 60601" in reason
