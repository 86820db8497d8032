"""The analytics engine's handle: ClickHouse, embedded in the process (``chdb``) or a
server or cluster (``clickhouse-connect``). Both run the same SQL, so the content index
and the event analytics are written once against this small surface.

URLs: ``chdb:///var/lib/consentry/ch`` (embedded, on disk), ``chdb://`` (embedded, in
memory), ``http(s)://user:password@host:8123`` (a server). The database the tables live
in is given separately, so one engine holds several deployments' (or tests') tables.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import numpy as np

from consentry.config import Settings
from consentry.errors import ConfigurationError

Column = Sequence[Any] | np.ndarray  # one column's values
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ClickHouse(Protocol):
    """What Consentry asks of the analytics engine."""

    database: str
    url: str  # what it was opened with (CONSENTRY_CLICKHOUSE_URL's form)

    def command(self, sql: str) -> None:
        """Run a statement that returns nothing."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query; its rows as tuples."""

    def insert(self, table: str, columns: Mapping[str, Column]) -> None:
        """Insert rows given column by column (equal lengths)."""

    def close(self) -> None:
        """Release the connection."""


def quoted_name(name: str) -> str:
    """A database or table name, checked: names are put into SQL text."""
    if not _NAME.match(name):
        raise ConfigurationError(f"{name!r} is not a valid ClickHouse database or table name")
    return name


class EmbeddedClickHouse:
    """ClickHouse inside this process (``chdb``). chdb serves one data path per process:
    every handle on the same path shares one connection."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _shared: ClassVar[dict[str, tuple[Any, int]]] = {}  # path -> (connection, handles open)

    def __init__(self, path: str, database: str) -> None:
        import chdb

        self.path = path or ":memory:"
        self.url = f"chdb://{path}"
        self.database = quoted_name(database)
        with self._lock:
            conn, users = self._shared.get(self.path, (None, 0))
            if conn is None:
                conn = chdb.connect(self.path)
            self._shared[self.path] = (conn, users + 1)
        self._conn = conn
        self._query_lock = threading.Lock()  # a chdb connection serves one query at a time
        self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")

    def command(self, sql: str) -> None:
        with self._query_lock:
            self._conn.query(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._query_lock:
            table = self._conn.query(sql, "ArrowTable")
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def insert(self, table: str, columns: Mapping[str, Column]) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]

        frame = pa.table(dict(columns))  # noqa: F841 -- read by name by chdb's Python()
        names = ", ".join(quoted_name(c) for c in columns)
        with self._query_lock:
            self._conn.query(f"INSERT INTO {self.database}.{quoted_name(table)} ({names}) "
                             f"SELECT {names} FROM Python(frame)")

    def close(self) -> None:
        with self._lock:
            conn, users = self._shared.get(self.path, (None, 0))
            if conn is None:
                return
            if users <= 1:
                del self._shared[self.path]
                conn.close()
            else:
                self._shared[self.path] = (conn, users - 1)


class ServerClickHouse:
    """A ClickHouse server or cluster over HTTP (``clickhouse-connect``)."""

    def __init__(self, url: str, database: str) -> None:
        import clickhouse_connect

        self.database = quoted_name(database)
        self.url = url
        self._client = clickhouse_connect.get_client(dsn=url)
        self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")

    def command(self, sql: str) -> None:
        self._client.command(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._client.query(sql).result_rows]

    def insert(self, table: str, columns: Mapping[str, Column]) -> None:
        data: list[Any] = list(columns.values())
        self._client.insert(f"{self.database}.{quoted_name(table)}", data,
                            column_names=list(columns), column_oriented=True)

    def close(self) -> None:
        self._client.close()


def connect_clickhouse(url: str, database: str = "consentry") -> ClickHouse:
    """A handle on the engine ``url`` names (see the module docstring)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "chdb":
        return EmbeddedClickHouse(url[len("chdb://"):], database)
    if scheme in {"http", "https", "clickhouse", "clickhouses"}:
        return ServerClickHouse(url, database)
    raise ConfigurationError(f"CONSENTRY_CLICKHOUSE_URL: {url!r} is neither chdb:///PATH "
                             "(embedded) nor http(s)://host:8123 (a server)")


@contextmanager
def configured_clickhouse(settings: Settings) -> Iterator[ClickHouse]:
    """The engine ``CONSENTRY_CLICKHOUSE_URL`` names, closed when done."""
    if not settings.clickhouse_url:
        raise ConfigurationError("no analytics engine is configured: set "
                                 "CONSENTRY_CLICKHOUSE_URL (chdb:///PATH or http://host:8123)")
    engine = connect_clickhouse(settings.clickhouse_url, settings.clickhouse_database)
    try:
        yield engine
    finally:
        engine.close()
