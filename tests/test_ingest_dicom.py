"""DICOM header extraction: typed columns, lossless raw headers, rejects with reasons, incremental and resumable."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from ingest.dicom_headers import RemovalsRefused, ingest_dicom_headers, read_file, walk
from tests.conftest import FILES
from xrh.warehouse import connect

PROJECT = Path("mimic-cxr/2.1.0")


def ingest(conn, root: Path, **options):
    return ingest_dicom_headers(conn, root, **options)


def test_simulated_tree_gives_one_typed_row_per_file(simulated, tmp_path):
    root, summary = simulated
    project = root / FILES / PROJECT
    with connect(tmp_path / "w.sqlite") as conn:
        result = ingest(conn, project / "files", stored_relative_to=project, dcm_only=True, workers=2)
        assert (result.scanned, result.headers, result.rejects) == (summary.images, summary.images, 0)
        record_paths = set()
        for path, dicom_id, study_id, subject_id, kvp, exposure, rows, spacing, header in conn.execute(
            "select path, dicom_id, study_id, subject_id, KVP, Exposure, Rows, PixelSpacing_row, header_bytes"
            " from raw_dicom_headers"
        ):
            ds = pydicom.dcmread(project / path, stop_before_pixels=True)
            assert path.startswith("files/p1") and path.endswith(f"/s{study_id}/{dicom_id}.dcm")
            assert str(subject_id) == ds.PatientID and rows == ds.Rows
            assert kvp == (float(ds.KVP) if "KVP" in ds else None)
            assert exposure == (float(ds.Exposure) if "Exposure" in ds else None)
            assert spacing == pytest.approx(float(ds.PixelSpacing[0]))
            reread = pydicom.dcmread(io.BytesIO(header))  # the kept header bytes are a complete header
            assert reread.SOPInstanceUID == ds.SOPInstanceUID and "PixelData" not in reread
            record_paths.add(path)
        assert len(record_paths) == summary.images


def test_second_run_skips_unchanged_files_and_rereads_touched_ones(simulated, tmp_path):
    root, _ = simulated
    folder = tmp_path / "dicom"
    shutil.copytree(root / FILES / PROJECT / "files", folder)
    with connect(tmp_path / "w.sqlite") as conn:
        first = ingest(conn, folder)
        second = ingest(conn, folder)
        assert second.unchanged == second.scanned == first.scanned
        some_file = next(folder.rglob("*.dcm"))
        some_file.touch()
        some_file.with_name("gone.dcm").write_bytes(b"")
        (next(folder.rglob("*.txt"))).unlink()  # a report vanishes: its reject row goes too
        third = ingest(conn, folder)
        assert third.unchanged == third.scanned - 2 and third.removed == 1


def malformed_files(valid: Path, folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input; return name -> expected reason (a fragment)."""
    data = valid.read_bytes()
    folder.mkdir(parents=True)
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "archive.dcm.gz").write_bytes(gzip.compress(data))
    (folder / "notes.txt").write_text("Patient positioned erect. Report follows.\n" * 20)
    ds = pydicom.dcmread(valid)
    del ds.Rows
    ds.save_as(folder / "no-rows.dcm", enforce_file_format=True)
    (folder / "empty.dcm").write_bytes(b"")
    return {
        "truncated.dcm": "truncated: pixel data needs",
        "archive.dcm.gz": "gzip-compressed",
        "notes.txt": "plain text",
        "no-rows.dcm": "missing required tags: Rows",
        "empty.dcm": "not DICOM",
    }


def test_bad_files_go_to_rejects_with_a_reason_and_good_ones_still_load(simulated, tmp_path):
    root, _ = simulated
    valid = next((root / FILES / PROJECT / "files").rglob("*.dcm"))
    folder = tmp_path / "incoming"
    expected = malformed_files(valid, folder / "bad")

    ds = pydicom.dcmread(valid)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    (folder / "no-preamble.dcm").write_bytes(buffer.getvalue()[132:])  # no preamble, no 'DICM': still DICOM
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Manufacturer = "Müller Röntgen 東京"
    ds.save_as(folder / "utf8.dcm", enforce_file_format=True)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.Manufacturer = "Müller Röntgen"
    ds.save_as(folder / "latin1.dcm", enforce_file_format=True)
    for name, syntax in (("rle.dcm", RLELossless), ("j2k.dcm", JPEG2000Lossless)):
        compressed = pydicom.dcmread(valid)
        compressed.compress(syntax)
        compressed.save_as(folder / name, enforce_file_format=True)

    with connect(tmp_path / "w.sqlite") as conn:
        summary = ingest(conn, folder)
        reasons = dict(conn.execute("select path, reason from raw_dicom_rejects"))
        manufacturers = dict(conn.execute("select path, Manufacturer from raw_dicom_headers"))
        syntaxes = dict(conn.execute("select path, TransferSyntaxUID from raw_dicom_headers"))
    assert summary.rejects == len(expected) and summary.headers == 5
    for name, fragment in expected.items():
        reason = reasons[str((folder / "bad" / name).resolve())]
        assert fragment in reason, (name, reason)
    by_name = {Path(path).name: value for path, value in manufacturers.items()}
    assert by_name["utf8.dcm"] == "Müller Röntgen 東京"
    assert by_name["latin1.dcm"] == "Müller Röntgen"
    assert "no-preamble.dcm" in by_name
    assert {Path(p).name: s for p, s in syntaxes.items()}["rle.dcm"] == RLELossless


RESUME_SCRIPT = """
import sys
from pathlib import Path
from ingest.dicom_headers import RemovalsRefused, ingest_dicom_headers, read_file, walk
from xrh.warehouse import connect
with connect(Path(sys.argv[1])) as conn:
    ingest_dicom_headers(conn, Path(sys.argv[2]), dcm_only=True, workers=1, files_per_commit=10)
"""


def table_rows(warehouse: Path) -> list[tuple]:
    with connect(warehouse) as conn:
        columns = [r[1] for r in conn.execute("pragma table_info(raw_dicom_headers)") if r[1] != "_loaded_at"]
        return conn.execute(
            f"select {', '.join(chr(34) + c + chr(34) for c in columns)} from raw_dicom_headers order by path"
        ).fetchall()


def test_killed_run_resumes_to_the_same_table_as_an_uninterrupted_run(simulated, tmp_path):
    root, _ = simulated
    folder = root / FILES / PROJECT / "files"
    clean, resumed = tmp_path / "clean.sqlite", tmp_path / "resumed.sqlite"
    with connect(clean) as conn:
        ingest(conn, folder, dcm_only=True, workers=1)
    process = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(resumed), str(folder)])
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(resumed) as probe:
                committed = probe.execute("select count(*) from raw_dicom_headers").fetchone()[0]
        except sqlite3.Error:
            committed = 0
        if committed >= 10:
            process.kill()
            break
        time.sleep(0.005)
    process.wait()
    with connect(resumed) as conn:
        interrupted = conn.execute("select count(*) from raw_dicom_headers").fetchone()[0]
        rerun = ingest(conn, folder, dcm_only=True, workers=2)
    assert interrupted < rerun.scanned, "the run should have been killed part-way"
    assert rerun.unchanged == interrupted
    assert table_rows(resumed) == table_rows(clean)


def test_loops_fifos_and_broken_links_become_reason_rows_and_never_stop_the_walk(simulated, tmp_path):
    root, _ = simulated
    valid = next((root / FILES / PROJECT / "files").rglob("*.dcm"))
    folder = tmp_path / "incoming"
    (folder / "a" / "b").mkdir(parents=True)
    shutil.copy(valid, folder / "a" / "b" / "good.dcm")
    (folder / "a" / "b" / "up").symlink_to(folder / "a")  # a folder loop
    (folder / "self.dcm").symlink_to(folder / "self.dcm")  # a link to itself
    (folder / "dangling.dcm").symlink_to(folder / "nowhere.dcm")
    os.mkfifo(folder / "pipe.dcm")
    (folder / "linked.dcm").symlink_to(folder / "a" / "b" / "good.dcm")
    with connect(tmp_path / "w.sqlite") as conn:
        summary = ingest(conn, folder)
        rejects = conn.execute("select path, reason from raw_dicom_rejects")
        reasons = {Path(path).name: reason for path, reason in rejects}
        headers = {Path(path).name for (path,) in conn.execute("select path from raw_dicom_headers")}
        again = ingest(conn, folder)
    assert headers == {"good.dcm", "linked.dcm"} and summary.headers == 2
    assert "symlink loop" in reasons["up"]
    assert "symlink loop" in reasons["self.dcm"] and "broken symlink" in reasons["dangling.dcm"]
    assert "FIFO" in reasons["pipe.dcm"]
    assert again.removed == 0 and again.headers == 2


def test_an_empty_or_unmounted_folder_removes_nothing_unless_told(simulated, tmp_path):
    root, _ = simulated
    folder = tmp_path / "mount"
    shutil.copytree(root / FILES / PROJECT / "files", folder)
    with connect(tmp_path / "w.sqlite") as conn:
        first = ingest(conn, folder)
        shutil.rmtree(folder)
        folder.mkdir()  # the mount point is there, the disk is not
        with pytest.raises(RemovalsRefused, match="is the disk mounted"):
            ingest(conn, folder)
        assert conn.execute("select count(*) from raw_dicom_headers").fetchone()[0] == first.headers
        shutil.copytree(root / FILES / PROJECT / "files", folder, dirs_exist_ok=True)
        victims = sorted(folder.rglob("*.dcm"))[: first.headers // 5]
        for path in victims:  # a fifth of the files gone: a half-copied disk
            path.unlink()
        with pytest.raises(RemovalsRefused, match="--allow-removals"):
            ingest(conn, folder)
        allowed = ingest(conn, folder, allow_removals=True)
    assert allowed.removed == len(victims) and allowed.headers == first.headers - len(victims)


def test_cli_refusal_is_one_line_and_exits_1(simulated, tmp_path):
    root, _ = simulated
    folder = tmp_path / "mount"
    shutil.copytree(root / FILES / PROJECT / "files", folder)
    environment = {**os.environ, "XRH_DATA_ROOT": str(tmp_path), "XRH_WAREHOUSE": str(tmp_path / "w.sqlite")}
    command = [sys.executable, "-m", "xrh.cli", "ingest", "dicom", str(folder), "--workers", "1"]
    assert subprocess.run(command, env=environment, capture_output=True).returncode == 0
    shutil.rmtree(folder)
    folder.mkdir()
    refused = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "Nothing was changed" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_header_with_megabytes_of_private_data_keeps_its_columns_and_bounded_memory(simulated, tmp_path):
    root, _ = simulated
    valid = next((root / FILES / PROJECT / "files").rglob("*.dcm"))
    ds = pydicom.dcmread(valid)
    ds.KVP = "110"
    ds.private_block(0x0029, "XRH TEST", create=True).add_new(0x01, "OB", b"\x01" * (24 << 20))
    folder = tmp_path / "large"
    folder.mkdir()
    ds.save_as(folder / "private.dcm", enforce_file_format=True)
    entry = next(walk(folder, stored_relative_to=None, dcm_only=True))
    tracemalloc.start()
    kind, row = read_file(entry)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kind == "header"
    assert peak < 4 << 20, f"parsing a 24 MiB private element used {peak / 2**20:.1f} MiB"
    with connect(tmp_path / "w.sqlite") as conn:
        ingest(conn, folder)
        kvp, header_bytes, header_length = conn.execute(
            "select KVP, header_bytes, header_length from raw_dicom_headers"
        ).fetchone()
    assert kvp == float(ds.KVP) and header_bytes == b"" and header_length > 24 << 20
