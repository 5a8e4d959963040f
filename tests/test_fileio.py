"""envs.fileio: a file is replaced whole or left alone, and gets the permissions a plain open() would give it."""

import os
import stat

import pytest

from envs.fileio import atomic_write_bytes, atomic_write_text, atomic_writer, write_json


def test_written_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_writer(target, "w") as f:
        f.write("new, half written")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_write_json_replaces_the_file(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"x": 1})
    write_json(target, {"x": float("nan")})
    assert target.read_text() == '{\n "x": null\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
