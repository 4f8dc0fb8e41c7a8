"""Small helpers for reading and replacing DuckDB tables from Dagster assets."""

from __future__ import annotations

from contextlib import contextmanager

import pandas as pd

# Defined with the pure code (ml/ renders model cards with it); the assets import it from here too.
from clv_platform.markdown import markdown_table as markdown_table


@contextmanager
def transaction(con):
    """One DuckDB transaction: committed when the body ends, rolled back if it raises."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


@contextmanager
def _writing(con, table: str, frame: pd.DataFrame):
    """One transaction in which ``frame`` is readable as ``_frame_to_write``; rolled back if the body raises."""
    schema, _ = table.split(".")
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame_to_write", frame)
    try:
        with transaction(con):
            yield
    finally:
        con.unregister("_frame_to_write")


def replace_table(con, table: str, frame: pd.DataFrame) -> int:
    """Atomically replace ``schema.table`` with ``frame``; readers see the old or the new table, never half."""
    with _writing(con, table, frame):
        con.execute(f"create or replace table {table} as select * from _frame_to_write")
    return con.execute(f"select count(*) from {table}").fetchone()[0]


def replace_cutoff_rows(con, table: str, frame: pd.DataFrame, cutoff) -> int:
    """Replace the rows of one ``cutoff_date`` of ``schema.table`` with ``frame``, in one transaction.

    The table keeps one row per customer per cutoff: rescoring a cutoff replaces it, other cutoffs stay as
    history. The table follows ``frame``'s columns: one the code no longer writes is dropped, a new one is
    added (null on the older cutoffs). Returns the number of rows stored for ``cutoff``.
    """
    with _writing(con, table, frame):
        con.execute(f"create table if not exists {table} as select * from _frame_to_write limit 0")
        stored = {row[0]: row[1] for row in con.execute(f"describe {table}").fetchall()}
        written = {row[0]: row[1] for row in con.execute("describe _frame_to_write").fetchall()}
        for column in stored.keys() - written.keys():
            con.execute(f'alter table {table} drop column "{column}"')
        for column in written.keys() - stored.keys():
            con.execute(f'alter table {table} add column "{column}" {written[column]}')
        con.execute(f"delete from {table} where cutoff_date = ?", [cutoff])
        con.execute(f"insert into {table} by name select * from _frame_to_write")
    return con.execute(f"select count(*) from {table} where cutoff_date = ?", [cutoff]).fetchone()[0]


def read_table(con, table: str, where: str = "") -> pd.DataFrame:
    return con.execute(f"select * from {table} {where}").df()


@contextmanager
def connect(warehouse):
    """``warehouse.get_connection()`` that also closes on an exception (dagster-duckdb's does not,
    and a dangling read-write connection makes later read-only opens in the process fail)."""
    with warehouse.get_connection() as con:
        try:
            yield con
        finally:
            con.close()
