import pytest

from vqalab.io import atomic_path, read_json, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"accuracy": 0.')  # a write interrupted half-way
        raise RuntimeError("killed")
    assert read_json(target) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_directory_output_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("old")
        (tmp / "stale.txt").write_text("old")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "new"
    assert (target.stat().st_mode & 0o777) != 0o700  # usual permissions, not mkdtemp's owner-only


def test_read_json_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json does not exist"):
        read_json(tmp_path / "nothing.json")
