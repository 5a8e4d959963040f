"""Fixtures shared across the suite: the data folder, the database, the vectoriser, the golden traces, and
single-threaded torch (results must not depend on how many cores the machine has)."""

import shutil
from pathlib import Path

import pytest
import torch

from envs.multiwoz import data as mw_data
from envs.multiwoz.db import Database
from envs.multiwoz.parity.traces import traces_dir
from envs.multiwoz.vector import Vectoriser


@pytest.fixture(scope="session")
def mwdata():
    return mw_data.load()


@pytest.fixture(scope="session")
def database(mwdata):
    return Database.from_data(mwdata)


@pytest.fixture(scope="session")
def vectoriser(mwdata, database):
    return Vectoriser(mwdata, database)


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trace_paths():
    paths = sorted(traces_dir().glob("*.jsonl.gz"))
    if not paths:
        pytest.fail(f"no golden traces in {traces_dir()} (set VRB_TRACES_DIR or place ../shared/traces)")
    return paths


@pytest.fixture
def data_copy(mwdata, tmp_path) -> Path:
    """A private, writable copy of the data folder, safe to damage."""
    return Path(shutil.copytree(mwdata.root, tmp_path / "multiwoz"))
