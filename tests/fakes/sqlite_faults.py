"""Faults to inject into the state database from an op, importable by a writer process."""

from __future__ import annotations

import sqlite3


def limit_pages(conn: sqlite3.Connection, pages: int | None) -> None:
    """The file may not grow beyond ``pages`` (None: its size now): SQLITE_FULL, as on a full
    disk. Per connection: run it as an op of the writing connection."""
    (count,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {count if pages is None else pages}")
