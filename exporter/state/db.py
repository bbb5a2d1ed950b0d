"""The two engines the store runs on, behind one small interface: SQLite
(a file, the embedded default) and PostgreSQL (`state.url`, shared by
replicas). The store's SQL is written once, in the syntax both accept
(`?` placeholders, `INSERT ... ON CONFLICT`); what truly differs lives here:
connecting, column types, starting a write transaction, and the lock that
keeps two processes from migrating one schema at once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

Params = Sequence[Any]


class StateUnavailable(Exception):
    """The database can not be reached now (server down, connection cut);
    the next use tries again."""


class Rows(Protocol):
    """What a query returns, on either engine."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Database(Protocol):
    """One connection, used under the store's lock. `types` fills the
    schema's column-type placeholders; `name` says which database,
    credentials hidden, for messages; `setting` is the config key that
    chose it."""

    name: str
    setting: str
    types: Mapping[str, str]
    shared: bool  # other processes write it too (replicas): nothing may be cached
    errors: tuple[type[Exception], ...]  # the driver's errors that mean "this database cannot be used"

    def execute(self, sql: str, params: Params = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    def begin(self) -> None:
        """Start a write transaction (ended by `end`)."""

    def end(self, commit: bool) -> None: ...

    def lock_schema(self) -> None:
        """Inside a transaction: hold off other processes' migrations until it ends."""

    def check(self) -> None:
        """Fail (with one of `errors`) when the database is unreadable."""

    def close(self) -> None: ...


class SqliteDatabase:
    """A state file. The connection's own `execute` is used as it is: the
    store's hot path pays nothing for the second engine."""

    types: Mapping[str, str] = {
        "real": "REAL",
        "blob": "BLOB",
        "rowid": "INTEGER PRIMARY KEY",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "without_rowid": " WITHOUT ROWID",
    }
    setting = "state.path"
    shared = False
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)

    def __init__(self, path: str) -> None:
        self.name = f"state file {path}"
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.execute = self._conn.execute
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._conn.execute("PRAGMA busy_timeout=5000")

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    def begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def end(self, commit: bool) -> None:
        self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def lock_schema(self) -> None:
        pass  # BEGIN IMMEDIATE already excludes every other writer

    def check(self) -> None:
        ok = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(ok)

    def close(self) -> None:
        self._conn.close()


class Transaction:
    """`with Transaction(db) as db:` begins, and commits or (on an error) rolls back."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __enter__(self) -> Database:
        self._db.begin()
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.end(commit=exc_type is None)


# What means "this database cannot be used" when the store opens it, on
# either engine (besides the Database's own `errors`): SQLite's errors come
# from opening the file, before there is a Database to ask.
ENGINE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, StateUnavailable)


def unusable(name: str, err: Exception) -> str:
    """What to do about a database the store could not open."""
    if isinstance(err, sqlite3.DatabaseError):
        return (
            f"{name} is unreadable or corrupt ({err}). Keep it for inspection, then move it aside and start "
            "again: the exporter re-reads `start_from` of history and counters restart at 0"
        )
    return f"{name} cannot be used ({err}). Check state.url, the server and the user's rights"


# Any constant: the advisory lock replicas take while they create or migrate the schema.
SCHEMA_LOCK = 0x61616573


class PostgresDatabase:
    """A PostgreSQL database (psycopg 3), one connection in autocommit mode
    with transactions begun and ended explicitly, as the SQLite one. A
    connection that broke (server restarted, network cut) is replaced on
    the next use, so the store recovers by itself once the server is back."""

    types: Mapping[str, str] = {
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "rowid": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "serial": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "without_rowid": "",
    }
    setting = "state.url"
    shared = True

    def __init__(self, url: str, name: str, connect_timeout: float = 10.0) -> None:
        """`name`: the URL with its password hidden (the store never sees the redactor)."""
        import psycopg  # here, not at the top: an exporter on a state file never loads the driver

        self.name = f"state database {name}"
        self._psycopg = psycopg
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self._gone = (psycopg.OperationalError, psycopg.InterfaceError)  # the server or the connection went away
        self._url = url
        self._timeout = connect_timeout
        self._local = threading.Lock()  # guards replacing the connection
        self._conn: psycopg.Connection[Any] | None = None  # connected on first use (inside the store's error handling)

    def _connection(self) -> psycopg.Connection[Any]:
        with self._local:
            if self._conn is None or self._conn.closed or self._conn.broken:
                if self._conn is not None:
                    self._conn.close()
                self._conn = self._psycopg.connect(
                    self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
                )
            return self._conn

    def execute(self, sql: str, params: Params = ()) -> Rows:
        try:
            return self._connection().execute(_pg(sql), params or None)
        except self._gone as err:
            raise StateUnavailable(f"{self.name} is unreachable: {err}") from err

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            with self._connection().cursor() as cursor:
                cursor.executemany(_pg(sql), rows)
        except self._gone as err:
            raise StateUnavailable(f"{self.name} is unreachable: {err}") from err

    def begin(self) -> None:
        self.execute("BEGIN")

    def end(self, commit: bool) -> None:
        if commit:
            self.execute("COMMIT")
            return
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            conn.execute("ROLLBACK")  # a broken connection's transaction is gone with it

    def lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))

    def check(self) -> None:
        self.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._local:
            if self._conn is not None:
                self._conn.close()


@lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """The store's `?` placeholders as psycopg's `%s` (the store's SQL has
    no other `?` nor any `%`)."""
    return sql.replace("?", "%s")
