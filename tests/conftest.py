"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), real
photos that ship offline, the real image models loaded once per test run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from postgres_schema import POSTGRES_URL, postgres_schema
from removal_platform import RemovalPlatform

from consentry.config import Settings
from consentry.store import Database

BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
CLICKHOUSE = ["chdb", "server"]  # embedded, and a server over ClickHouse's HTTP interface


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chdb serves one data path per process: every test shares it, each in its own
    ClickHouse database."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def clickhouse_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ClickHouse server reached with clickhouse-connect (tests/clickhouse_server.py)."""
    from clickhouse_server import clickhouse_server

    with clickhouse_server(tmp_path_factory.mktemp("clickhouse-server")) as url:
        yield url


@pytest.fixture(params=CLICKHOUSE)
def clickhouse_url(request: pytest.FixtureRequest, chdb_path: Path) -> str:
    """The analytics engine on each way in turn: embedded (chdb) and a server."""
    if request.param == "chdb":
        return f"chdb://{chdb_path}"
    return str(request.getfixturevalue("clickhouse_server_url"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'consentry.db'}"
        return
    with postgres_schema() as url:
        yield url




@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


class Clock:
    """A controllable UTC clock for strike expiry and suspension ends."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def platform() -> Iterator[RemovalPlatform]:
    """A platform's removal endpoint on a loopback port (takedown callbacks land here)."""
    p = RemovalPlatform()
    yield p
    p.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def analyser():
    """The real models, loaded once for the whole run."""
    from consentry.signals.image import ImageAnalyser

    model = ImageAnalyser()
    model.warm_up()
    return model


@pytest.fixture
def gate(db: Database, analyser, clock: Clock, tmp_path: Path):
    from consentry.gate import Gate

    g = Gate(db, settings=Settings(data_dir=tmp_path), analyser=analyser, clock=clock)
    yield g
    g.close()


@pytest.fixture
def batched(db: Database, analyser, clock: Clock, tmp_path: Path):
    """A gate that records in batches (group commit, CONSENTRY_BATCH_RECORDS=1)."""
    from consentry.gate import Gate

    g = Gate(db, settings=Settings(data_dir=tmp_path, batch_records=True),
             analyser=analyser, clock=clock)
    yield g
    g.close()


def _jpeg(array: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real photographs: people (astronaut Eileen Collins, Grace Hopper) and scenes."""
    import matplotlib.cbook
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = fh.read()
    return {
        "astronaut": _jpeg(data.astronaut()),
        "hopper": hopper,
        "coffee": _jpeg(data.coffee()),
        "china": _jpeg(china),
        "flower": _jpeg(flower),
    }
