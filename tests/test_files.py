"""The one atomic-write helper (`chatbot.files`): a failed write leaves the old file and
no temporary file; a finished one replaces it."""

from __future__ import annotations

import json

import pytest

from chatbot.files import atomic_path, replace_directory, write_json_atomic, write_text_atomic


def test_a_write_replaces_the_file_and_a_failed_one_leaves_it_and_no_temporary(tmp_path):
    target = tmp_path / "meta.json"
    write_json_atomic(target, {"b": 1, "a": 2}, sort_keys=True)
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half of a ")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
    write_text_atomic(target, "new\n", fsync=True)
    assert target.read_text() == "new\n"


def test_replace_directory_swaps_a_whole_directory(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "old").write_text("old")
    staged = tmp_path / ".v1.tmp"
    staged.mkdir()
    (staged / "new").write_text("new")
    replace_directory(staged, tmp_path / "v1")
    assert [p.name for p in (tmp_path / "v1").iterdir()] == ["new"] and not staged.exists()
