"""`dbt build` over a warehouse at full MIMIC-CXR scale: wall time and peak memory (target: under 2 minutes).

Run: .venv/bin/python benchmarks/dbt_scale.py [--work data/bench]

The raw tables are generated directly (no pixels, no files): 377,110 images in 227,835 studies of 65,379 subjects, with
MIMIC-IV-sized patients (364,627), admissions (546,028) and transfers (2,413,581), label files, metadata, splits and a
DICOM header row per image (a short placeholder instead of the header bytes). Studies fall inside their subjects'
stays, so the linkage does real work. The build (seeds, 37 models, about 170 data tests and the unit tests) runs in
its own process, which reports its peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBJECTS, STUDIES, IMAGES = 65_379, 227_835, 377_110
PATIENTS, ADMISSIONS, TRANSFERS = 364_627, 546_028, 2_413_581
ABSENT_SUBJECTS = 3_511


def generate(warehouse: Path) -> dict:
    """Write the raw tables with vectorized numpy and batched inserts."""
    import numpy as np

    from ingest.csv_load import TABLES as LOAD_TABLES
    from ingest.dicom_headers import HEADER_COLUMNS, TAG_COLUMNS, ensure_tables
    from ingest.schemas import load_spec
    from simulate.population import LABEL_COLUMNS
    from xrh.warehouse import connect, write_transaction

    rng = np.random.default_rng(0)
    spec = load_spec()
    start = time.perf_counter()
    base = np.datetime64("2110-01-01T00:00:00")

    def stamp(seconds: np.ndarray) -> list[str]:
        return [s.replace("T", " ") for s in (base + seconds.astype("timedelta64[s]")).astype(str)]

    patient_ids = np.sort(rng.choice(np.arange(10_000_000, 20_000_000), PATIENTS, replace=False))
    cxr_in_mimiciv = rng.choice(patient_ids, SUBJECTS - ABSENT_SUBJECTS, replace=False)
    absent = np.setdiff1d(rng.choice(np.arange(10_000_000, 20_000_000), ABSENT_SUBJECTS * 3), patient_ids)
    cxr_subjects = np.concatenate([cxr_in_mimiciv, absent[:ABSENT_SUBJECTS]])

    # Admissions: CXR subjects get most of them, so their studies have stays to link to.
    admission_subject = np.where(
        rng.random(ADMISSIONS) < 0.6, rng.choice(cxr_in_mimiciv, ADMISSIONS), rng.choice(patient_ids, ADMISSIONS)
    )
    admit = rng.integers(0, 80 * 365 * 86_400, ADMISSIONS)
    stay = rng.integers(86_400, 12 * 86_400, ADMISSIONS)
    hadm = 20_000_000 + rng.permutation(ADMISSIONS)
    ed_only = TRANSFERS - 4 * ADMISSIONS
    ed_subject = rng.choice(cxr_in_mimiciv, ed_only)
    ed_in = rng.integers(0, 80 * 365 * 86_400, ed_only)

    # Studies: in an admission of their subject (or, for absent subjects, at a random time).
    admission_of_subject = {}
    for index, subject in enumerate(admission_subject):
        admission_of_subject.setdefault(int(subject), index)
    study_subject = np.concatenate([cxr_subjects, rng.choice(cxr_subjects, STUDIES - SUBJECTS)])
    study_time = rng.integers(0, 80 * 365 * 86_400, STUDIES)
    for i, subject in enumerate(study_subject):
        index = admission_of_subject.get(int(subject))
        if index is not None:
            study_time[i] = admit[index] + rng.integers(0, stay[index])
    study_ids = 50_000_000 + rng.permutation(STUDIES)
    image_study = np.concatenate([np.arange(STUDIES), rng.integers(0, STUDIES, IMAGES - STUDIES)])
    dicom_ids = [f"{a:08x}-{b:08x}-{c:08x}-{d:08x}-{e:08x}" for a, b, c, d, e in rng.integers(0, 2**32, (IMAGES, 5))]
    view = rng.choice(["AP", "PA", "LATERAL", "LL", ""], IMAGES, p=[0.391, 0.254, 0.219, 0.094, 0.042])
    detector = np.where(view == "", None, rng.choice(["DIRECT", "SCINTILLATOR"], IMAGES, p=[0.8, 0.2])).tolist()
    kvp = np.where(view == "AP", 90.0, np.where(view == "PA", rng.choice([110.0, 120.0], IMAGES), 120.0))
    # About 10% without KVP, half of those written as the "not recorded" sentinel 0, as real archives do.
    kvp_list = [
        None if v == "" or r < 0.05 else 0.0 if r < 0.1 else float(k)
        for v, k, r in zip(view, kvp, rng.random(IMAGES), strict=True)
    ]
    study_stamp = stamp(study_time)
    image_paths = [
        f"files/p{str(study_subject[s])[:2]}/p{study_subject[s]}/s{study_ids[s]}/{dicom_ids[i]}.dcm"
        for i, s in enumerate(image_study)
    ]

    tables = {
        "raw_mimiciv_hosp__patients": [
            (int(s), "M" if s % 2 else "F", int(a), int(y), "2011 - 2013", None, "bench", "bench")
            for s, a, y in zip(
                patient_ids, rng.integers(18, 92, PATIENTS), rng.integers(2110, 2190, PATIENTS), strict=True
            )
        ],
        "raw_mimiciv_hosp__admissions": [
            (
                int(s),
                int(h),
                a,
                d,
                None,
                "EW EMER.",
                None,
                "EMERGENCY ROOM",
                "HOME",
                "Medicare",
                "English",
                None,
                "WHITE",
                None,
                None,
                0,
                "bench",
                "bench",
            )
            for s, h, a, d in zip(admission_subject, hadm, stamp(admit), stamp(admit + stay), strict=True)
        ],
        "raw_mimiciv_hosp__provider": [("P00001", "bench", "bench")],
    }
    transfers = []
    transfer_id = 30_000_000
    for s, h, a, st in zip(admission_subject.tolist(), hadm.tolist(), admit.tolist(), stay.tolist(), strict=True):
        moments = stamp(np.array([a - 18_000, a, a + st // 2, a + st]))
        for event, unit, t_in, t_out in (
            ("ed", "Emergency Department", 0, 1),
            ("admit", "Medicine", 1, 2),
            ("transfer", "Medical Intensive Care Unit (MICU)", 2, 3),
        ):
            transfers.append((s, h, transfer_id, event, unit, moments[t_in], moments[t_out], "bench", "bench"))
            transfer_id += 1
        transfers.append((s, h, transfer_id, "discharge", None, moments[3], None, "bench", "bench"))
        transfer_id += 1
    ed_stamps_in, ed_stamps_out = stamp(ed_in), stamp(ed_in + 20_000)
    for s, t_in, t_out in zip(ed_subject.tolist(), ed_stamps_in, ed_stamps_out, strict=True):
        transfers.append((s, None, transfer_id, "ed", "Emergency Department", t_in, t_out, "bench", "bench"))
        transfer_id += 1
    tables["raw_mimiciv_hosp__transfers"] = transfers
    tables["raw_mimiciv_hosp__services"] = [
        (int(s), int(h), a, None, "MED", "bench", "bench")
        for s, h, a in zip(admission_subject, hadm, stamp(admit), strict=True)
    ]
    tables["raw_mimic_cxr__study_list"] = [
        (
            int(study_subject[i]),
            int(study_ids[i]),
            f"files/p{str(study_subject[i])[:2]}/p{study_subject[i]}/s{study_ids[i]}.txt",
            "bench",
            "bench",
        )
        for i in range(STUDIES)
    ]
    tables["raw_mimic_cxr__provider_list"] = [(int(s), None, "P00001", None, "bench", "bench") for s in study_ids]
    tables["raw_mimic_cxr__record_list"] = [
        (int(study_subject[s]), int(study_ids[s]), dicom_ids[i], image_paths[i], "bench", "bench")
        for i, s in enumerate(image_study)
    ]
    date_time = [(int(t[:10].replace("-", "")), float(t[11:].replace(":", ""))) for t in study_stamp]
    tables["raw_mimic_cxr_jpg__metadata"] = [
        (
            dicom_ids[i],
            int(study_subject[s]),
            int(study_ids[s]),
            "CHEST",
            str(view[i]),
            320,
            260,
            *date_time[s],
            None,
            None,
            None,
            "bench",
            "bench",
        )
        for i, s in enumerate(image_study)
    ]
    tables["raw_mimic_cxr_jpg__split"] = [
        (dicom_ids[i], int(study_ids[s]), int(study_subject[s]), "train", "bench", "bench")
        for i, s in enumerate(image_study)
    ]
    label_values = rng.choice([1.0, 0.0, -1.0, None], (STUDIES, len(LABEL_COLUMNS)), p=[0.1, 0.1, 0.05, 0.75])
    for name in ("raw_mimic_cxr_jpg__chexpert", "raw_mimic_cxr_jpg__negbio"):
        tables[name] = [
            (int(study_subject[i]), int(study_ids[i]), *label_values[i].tolist(), "bench", "bench")
            for i in range(STUDIES - 8)
        ]
    tag_names = [name for name, _, _ in TAG_COLUMNS]
    headers = []
    for i, s in enumerate(image_study):
        tags = dict.fromkeys(tag_names)
        tags.update(
            SOPClassUID="1.2.840.10008.5.1.4.1.1.1.1",
            SOPInstanceUID=f"2.25.{i}",
            Modality="DX",
            StudyDate=study_stamp[s][:10].replace("-", ""),
            StudyTime=study_stamp[s][11:].replace(":", ""),
            ViewPosition=str(view[i]),
            Manufacturer="Bench",
            ManufacturerModelName="B1",
            KVP=kvp_list[i],
            Exposure=3.0,
            DetectorType=detector[i],
            PixelSpacing_row=0.139,
            PixelSpacing_col=0.139,
            Rows=3050,
            Columns=2539,
            BitsAllocated=16,
            BitsStored=12,
            PhotometricInterpretation="MONOCHROME1",
        )
        headers.append(
            (
                image_paths[i],
                dicom_ids[i],
                int(study_ids[s]),
                int(study_subject[s]),
                1,
                0,
                None,
                *tags.values(),
                b"placeholder",
                image_paths[i],
                "bench",
                len(b"placeholder"),
            )
        )
    assert len(headers[0]) == len(HEADER_COLUMNS)

    for suffix in ("", "-wal", "-shm"):
        Path(str(warehouse) + suffix).unlink(missing_ok=True)
    counts = {}
    with connect(warehouse) as conn:
        for name in ("raw_load_progress", "raw_load_fixups"):
            conn.execute(LOAD_TABLES[name].create_sql())
        ensure_tables(conn)
        for table in spec.tables.values():
            conn.execute(table.as_declared().create_sql())
        tables["raw_dicom_headers"] = headers
        for name, rows in tables.items():
            with write_transaction(conn):
                conn.executemany(f"insert into {name} values ({', '.join('?' * len(rows[0]))})", rows)
            counts[name] = len(rows)
        conn.execute("pragma wal_checkpoint(truncate)")
    counts["seconds"] = time.perf_counter() - start
    return counts


def build(warehouse: Path) -> dict:
    """`dbt build` on the SQLite target, in this (fresh) process."""
    from xrh.dbt import run_dbt
    from xrh.settings import Settings

    settings = Settings(data_root=warehouse.parent, warehouse=warehouse, cache_dir=warehouse.parent / "cache")
    start = time.perf_counter()
    success = run_dbt(settings, ["build", "--quiet"])
    seconds = time.perf_counter() - start
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {"success": success, "seconds": seconds, "peak_mib": peak / 1024}


def run_step(name: str, warehouse: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--step", name, str(warehouse)], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/bench")
    parser.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, warehouse = args.step
        print(json.dumps({"generate": generate, "build": build}[name](Path(warehouse))))
        return
    warehouse = (ROOT / args.work / "dbt-scale" / "warehouse.sqlite").resolve()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs")
    counts = run_step("generate", warehouse)
    print(
        f"raw rows generated in {counts.pop('seconds'):.0f} s: "
        + ", ".join(f"{name.removeprefix('raw_')} {count:,}" for name, count in counts.items())
    )
    result = run_step("build", warehouse)
    print(
        f"dbt build ({'passed' if result['success'] else 'FAILED'}): {result['seconds']:.1f} s wall "
        f"(target < 120 s), peak memory {result['peak_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
