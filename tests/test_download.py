"""`download` against a loopback HTTP server laid out like ConvLab-2's repository (no real network)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import pickle
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from envs.multiwoz import data as mw_data
from envs.multiwoz import download as mw_download
from vrb.data import main as data_cli

GOAL_PICKLE = "data/multiwoz/goal/new_goal_model.pkl"
VOCAB_PICKLE = "data/multiwoz/goal/vocab.pkl"


def small_goal_model() -> tuple:
    """A miniature of new_goal_model.pkl with each kind of mapping the real one has."""
    return (
        {"hotel": {"info": {"area": 0.6, "stars": 0.3}, "reqt": {"phone": 0.4}}},
        {"hotel": {"info": {"area": Counter({"north": 0.25, "centre": 0.75})}}},
        {("hotel",): 0.4, ("train", "hotel"): 0.35, ("hotel", "train"): 0.25},
        {"hotel": 0.26, "police": 0.0},
        {"hotel": {"info": Counter({4: 14, 1: 6, 3: 2}), "reqt": {2: 5, 1: 7}}},
        {"hotel": {"info": Counter({("area", "stars"): 9, ("area",): 3})}},
    )


def small_vocab() -> tuple:
    return ({"<PAD>": 0, "hotel_info": 1}, {"<PAD>": 0, "Hotel-Inform": 1}, {"<PAD>": 0, "Hotel-Request": 1})


class RunsCommand:
    """Pickles to a call of ``function(argument)``: what a hostile pickle would do."""

    def __init__(self, function, argument: str):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def hostile_pickles(marker: Path) -> dict[str, bytes]:
    return {
        "os.system": pickle.dumps(RunsCommand(os.system, f"touch {marker}")),
        "builtins.eval": pickle.dumps(RunsCommand(eval, f"open({str(marker)!r}, 'w').close()")),
    }


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def upstream(tmp_path, mwdata, monkeypatch):
    """A served copy of the upstream layout, yielding (base URL, its folder); the sha256 table matches it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # checksum stamps stay out of ~/.cache
    root = tmp_path / "upstream"
    generated = {GOAL_PICKLE: pickle.dumps(small_goal_model()), VOCAB_PICKLE: pickle.dumps(small_vocab())}
    for item in mw_download.UPSTREAM_FILES:
        target = root / item.upstream
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.upstream in generated:
            target.write_bytes(generated[item.upstream])
        else:
            shutil.copyfile(mwdata.root / item.local, target)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(mw_download, "UPSTREAM_FILES", table_for(root))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def table_for(root: Path) -> tuple[mw_download.UpstreamFile, ...]:
    """The upstream table with the test's own sha256 for the generated pickles."""
    return tuple(
        dataclasses.replace(item, sha256=hashlib.sha256((root / item.upstream).read_bytes()).hexdigest())
        if item.upstream in (GOAL_PICKLE, VOCAB_PICKLE)
        else item
        for item in mw_download.UPSTREAM_FILES
    )


def test_good_download_loads(upstream, tmp_path):
    base_url, _ = upstream
    dest = mw_download.download(tmp_path / "out" / "multiwoz", base_url=base_url)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["multiwoz"]  # no staging folder left behind
    folder = mw_data.load(dest)
    goal = folder.goal_model
    assert list(goal.domain_ordering_dist) == [("hotel",), ("train", "hotel"), ("hotel", "train")]
    assert list(goal.slots_num_dist["hotel"]["info"].items()) == [(4, 14), (1, 6), (3, 2)]
    assert list(goal.slots_combination_dist["hotel"]["info"]) == [("area", "stars"), ("area",)]
    assert goal.ind_slot_value_dist["hotel"]["info"]["area"] == {"north": 0.25, "centre": 0.75}
    assert folder.vhus_vocab["usr"] == {"<PAD>": 0, "Hotel-Inform": 1}
    assert len(folder.corpus("val")) == 999
    assert folder.training_split() == "val"
    assert mw_data.read_checksums(dest).keys() == {item.local for item in mw_download.UPSTREAM_FILES}


def test_conversion_round_trips_order_and_tuple_keys():
    model = small_goal_model()
    tree = mw_download.to_json_tree(dict(zip(mw_download.GOAL_MODEL_FIELDS, model, strict=True)))
    decoded = mw_data.decode_pairs(tree)
    for name, original in zip(mw_download.GOAL_MODEL_FIELDS, model, strict=True):
        assert decoded[name] == original
    assert list(decoded["slots_combination_dist"]["hotel"]["info"]) == [("area", "stars"), ("area",)]


def test_corrupt_file_exits_2_naming_it(upstream, tmp_path, capsys):
    base_url, root = upstream
    with open(root / "data/multiwoz/db/hotel_db.json", "ab") as f:
        f.write(b" ")
    dest_parent = tmp_path / "out"
    dest_parent.mkdir()
    code = data_cli(["download", "--dest", str(dest_parent / "multiwoz"), "--base-url", base_url])
    assert code == 2
    message = capsys.readouterr().err.strip()
    assert "data/multiwoz/db/hotel_db.json" in message and "expected" in message
    assert len(message.splitlines()) == 1
    assert list(dest_parent.iterdir()) == []  # neither the destination nor a staging folder


def test_missing_upstream_file_names_url(upstream, tmp_path):
    base_url, root = upstream
    (root / "data/multiwoz/ontology.json").unlink()
    with pytest.raises(mw_download.DownloadError, match=r"data/multiwoz/ontology\.json failed: HTTP 404"):
        mw_download.download(tmp_path / "out", base_url=base_url)
    assert not (tmp_path / "out").exists()


def test_non_empty_destination_refused(upstream, tmp_path):
    base_url, _ = upstream
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(mw_download.DownloadError, match="not an empty folder"):
        mw_download.download(dest, base_url=base_url)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
def test_restricted_unpickler_refuses_callables(tmp_path, kind):
    marker = tmp_path / "called"
    payload = hostile_pickles(marker)[kind]
    with pytest.raises(mw_download.UnsafePickleError, match="only plain containers"):
        mw_download.load_plain_pickle(payload)
    assert not marker.exists()


def test_hostile_pickle_in_download_is_refused(upstream, tmp_path, capsys, monkeypatch):
    base_url, root = upstream
    marker = tmp_path / "called"
    (root / VOCAB_PICKLE).write_bytes(hostile_pickles(marker)["os.system"])
    dest = tmp_path / "out" / "multiwoz"
    monkeypatch.setattr(mw_download, "UPSTREAM_FILES", table_for(root))
    code = data_cli(["download", "--dest", str(dest), "--base-url", base_url])
    assert code == 2
    message = capsys.readouterr().err
    assert VOCAB_PICKLE in message and "only plain containers" in message
    assert not marker.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_with_train_checks_git_blob_id(upstream, tmp_path, monkeypatch):
    base_url, root = upstream
    train = root / "data/multiwoz/train.json.zip"
    shutil.copyfile(root / "data/multiwoz/val.json.zip", train)
    with pytest.raises(mw_download.DownloadError, match="git blob id .* expected ab9c65bb"):
        mw_download.download(tmp_path / "bad", base_url=base_url, with_train=True)
    assert not (tmp_path / "bad").exists()

    blob = hashlib.sha1(b"blob %d\0" % train.stat().st_size + train.read_bytes()).hexdigest()
    monkeypatch.setattr(mw_download, "TRAIN_SPLIT_GIT_BLOB", blob)
    dest = mw_download.download(tmp_path / "good", base_url=base_url, with_train=True)
    assert mw_data.load(dest).training_split() == "train"
    assert "train.json.zip" in mw_data.read_checksums(dest)
