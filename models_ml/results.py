"""The ml_* tables: definitions and one writer per run, replacing that run's rows in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from xrh.warehouse import write_transaction

DDL = {
    "ml_runs": """
        create table if not exists ml_runs (
            run_id text primary key,
            cohort_name text not null,
            target text not null,
            split_scheme text not null,
            split_seed integer not null,
            architecture text not null,
            hyperparameters text not null,
            class_names text not null,
            data_hash text not null,
            checkpoint_path text not null,
            checkpoint_sha256 text not null,
            device text not null,
            epochs_run integer not null,
            best_epoch integer not null,
            train_seconds real not null,
            train_images_per_second real not null
        ) strict""",
    "ml_training_history": """
        create table if not exists ml_training_history (
            run_id text not null,
            epoch integer not null,
            train_loss real not null,
            validation_loss real not null,
            validation_balanced_accuracy real not null,
            primary key (run_id, epoch)
        ) strict""",
    "ml_predictions": """
        create table if not exists ml_predictions (
            run_id text not null,
            dicom_id text not null,
            split text not null,
            label integer not null,
            predicted_class integer not null,
            score real not null,
            probabilities text not null,
            primary key (run_id, dicom_id)
        ) strict""",
    "ml_metrics": """
        create table if not exists ml_metrics (
            run_id text not null,
            split text not null,
            metric text not null,
            true_class text,
            predicted_class text,
            value real
        ) strict""",
    "ml_features": """
        create table if not exists ml_features (
            run_id text not null,
            dicom_id text not null,
            dimensions integer not null,
            vector blob not null,
            primary key (run_id, dicom_id)
        ) strict""",
    "ml_feature_analysis": """
        create table if not exists ml_feature_analysis (
            run_id text not null,
            analysis text not null,
            grouping text not null,
            group_a text,
            group_b text,
            metric text not null,
            value real,
            p_value real
        ) strict""",
}


def ensure_ml_tables(conn: sqlite3.Connection) -> None:
    for ddl in DDL.values():
        conn.execute(ddl)


def replace_run_rows(
    conn: sqlite3.Connection, rows_by_table: dict[str, Iterable[Sequence[object]]], run_id: str
) -> None:
    """Delete ``run_id``'s rows from each named table and insert the new ones, all in one transaction."""
    with write_transaction(conn):
        ensure_ml_tables(conn)
        for table, rows in rows_by_table.items():
            rows = list(rows)
            conn.execute(f"delete from {table} where run_id = ?", (run_id,))
            if rows:
                conn.executemany(f"insert into {table} values ({', '.join('?' * len(rows[0]))})", rows)
