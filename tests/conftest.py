import pytest

from envs.multiwoz import data as mw_data
from envs.multiwoz.db import Database
from envs.multiwoz.traces import traces_dir


@pytest.fixture(scope="session")
def mwdata():
    return mw_data.load()


@pytest.fixture(scope="session")
def database(mwdata):
    return Database.from_data(mwdata)


@pytest.fixture(scope="session")
def trace_paths():
    paths = sorted(traces_dir().glob("*.jsonl.gz"))
    if not paths:
        pytest.fail(f"no golden traces in {traces_dir()} (set VRB_TRACES_DIR or place ../shared/traces)")
    return paths
