"""Patient-level dataset splits of an experiment cohort, written to ``ml_dataset_splits``.

Patients, not images, are assigned to splits, so no patient's images are in two splits; the split sizes are measured
in images (a patient with many images weighs more). Two schemes:

- ``standard``: within each label group, patients in a seeded random order each go to the split whose image count is
  furthest below its target share (60 / 20 / 20 by default). A patient with images in several label groups is one
  unit of its own stratum (the set of its labels), never split.
- ``balanced``: every label group gets the same number of training images, 60% of the smallest group's images (and
  20% each for validation and test); the larger groups' remaining patients are marked ``unused``.

The same cohort, scheme and seed always give the same rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from models_ml.results import TABLES
from xrh.tables import replace_rows
from xrh.warehouse import quote, table_exists

SPLITS = ("train", "validate", "test")
SCHEMES = ("standard", "balanced")


@dataclass(frozen=True)
class SplitCounts:
    images: dict[tuple[int, str], int]
    subjects_in_two_splits: int


def assign_subjects(
    images_per_subject: dict[int, int], quotas: dict[str, float], rng: np.random.Generator
) -> dict[int, str]:
    """Give each subject a split so that each split's image count approaches its quota.

    ``quotas`` are image counts (not shares) per split; subjects left when every quota is full go to ``unused``.
    """
    subjects = sorted(images_per_subject)
    order = rng.permutation(len(subjects))
    filled = dict.fromkeys(quotas, 0)
    assignment = {}
    for index in order:
        subject = subjects[index]
        open_splits = [name for name in quotas if filled[name] < quotas[name]]
        if not open_splits:
            assignment[subject] = "unused"
            continue
        # The split with the largest unfilled share of its quota takes the next patient.
        chosen = max(open_splits, key=lambda name: (1 - filled[name] / quotas[name], -list(quotas).index(name)))
        assignment[subject] = chosen
        filled[chosen] += images_per_subject[subject]
    return assignment


def split_cohort(
    conn: sqlite3.Connection,
    cohort_name: str,
    *,
    scheme: str = "standard",
    seed: int = 0,
    shares: tuple[float, float, float] = (0.6, 0.2, 0.2),
    run_id: str,
) -> SplitCounts:
    """Split one cohort of the ``experiment_cohorts`` mart; replace its rows for (cohort, scheme, seed)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not table_exists(conn, "experiment_cohorts"):
        raise ValueError("the experiment_cohorts mart does not exist yet; run `xrh build` first")
    rows = conn.execute(
        "select dicom_id, subject_id, label from experiment_cohorts where cohort_name = ? order by dicom_id",
        (cohort_name,),
    ).fetchall()
    if not rows:
        known = [r[0] for r in conn.execute("select distinct cohort_name from experiment_cohorts order by 1")]
        raise ValueError(f"cohort {cohort_name!r} has no images; cohorts with images: {known}")
    # Patients are stratified by the set of labels their images carry, so a patient whose images fall into two label
    # groups (a cohort without dedupe_subjects_from_larger_group) still goes to one split with all of them.
    labels_of: dict[int, set[int]] = {}
    for _, subject, label in rows:
        labels_of.setdefault(subject, set()).add(label)
    strata: dict[tuple[int, ...], dict[int, int]] = {}
    for _, subject, _ in rows:
        stratum = strata.setdefault(tuple(sorted(labels_of[subject])), {})
        stratum[subject] = stratum.get(subject, 0) + 1
    mixed = sum(len(subjects) for labels, subjects in strata.items() if len(labels) > 1)
    if scheme == "balanced" and mixed:
        raise ValueError(
            f"cohort {cohort_name!r} has {mixed} patients with images in more than one label group; the balanced "
            "scheme needs each patient in one group (dedupe_subjects_from_larger_group: true)"
        )
    smallest = min(sum(subjects.values()) for subjects in strata.values())
    rng = np.random.default_rng(seed)
    split_of: dict[int, str] = {}
    for labels in sorted(strata):
        subjects = strata[labels]
        total = smallest if scheme == "balanced" else sum(subjects.values())
        quotas = {name: share * total for name, share in zip(SPLITS, shares, strict=True)}
        split_of.update(assign_subjects(subjects, quotas, rng))
    key = {"cohort_name": cohort_name, "scheme": scheme, "seed": seed}
    records = [
        {
            **key,
            "run_id": run_id,
            "dicom_id": dicom_id,
            "subject_id": subject,
            "label": label,
            "split": split_of[subject],
        }
        for dicom_id, subject, label in rows
    ]
    replace_rows(conn, {TABLES["ml_dataset_splits"]: records}, where=key)
    counts: dict[tuple[int, str], int] = {}
    for record in records:
        counts[(record["label"], record["split"])] = counts.get((record["label"], record["split"]), 0) + 1
    subject_splits: dict[int, set[str]] = {}
    for record in records:
        subject_splits.setdefault(record["subject_id"], set()).add(record["split"])
    return SplitCounts(counts, sum(1 for splits in subject_splits.values() if len(splits) > 1))


MEMBER_COLUMNS = ("dicom_id", "dicom_path", "split", "label", "label_name", "subject_id", "energy_group")


def split_members(
    conn: sqlite3.Connection, cohort: str, *, scheme: str, seed: int, target: str = "label"
) -> list[dict[str, object]]:
    """The cohort's images in the split of ``scheme`` and ``seed``, by dicom_id: :data:`MEMBER_COLUMNS` and the
    ``target`` column of cohort_images. The one join of ``ml_dataset_splits`` (written by ``xrh split`` after the
    build, so it cannot be a dbt table) with the ``cohort_members`` mart.

    Raises
    ------
    ValueError
        Saying what to run when there is no such cohort or no such split.
    """
    if not table_exists(conn, "cohort_members"):
        raise ValueError("the warehouse has no cohort_members mart yet; run `xrh ingest all` and `xrh build` first")
    known = [row[0] for row in conn.execute("select distinct cohort_name from cohort_members order by 1")]
    if cohort not in known:
        raise ValueError(f"no cohort {cohort!r} in the warehouse; cohorts with images: {known}")
    split_command = f"`xrh split --cohort {cohort} --scheme {scheme} --seed {seed}`"
    if not table_exists(conn, "ml_dataset_splits"):
        raise ValueError(f"cohort {cohort!r} is not split yet; run {split_command}")
    columns = dict.fromkeys((*MEMBER_COLUMNS, target))
    selected = ", ".join("s.split" if name == "split" else f"m.{quote(name)}" for name in columns)
    rows = conn.execute(
        f"""
        select {selected}
        from ml_dataset_splits as s
        join cohort_members as m on m.cohort_name = s.cohort_name and m.dicom_id = s.dicom_id
        where s.cohort_name = ? and s.scheme = ? and s.seed = ?
        order by s.dicom_id
        """,
        (cohort, scheme, seed),
    ).fetchall()
    if not rows:
        raise ValueError(f"cohort {cohort!r} has no split of scheme {scheme} with seed {seed}; run {split_command}")
    return [dict(zip(columns, row, strict=True)) for row in rows]
