"""Atomic writes: a reader, a failure or a SIGKILL sees the old file or the new one, never a part."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from m5ops.stores.atomic import (atomic_path, publish_exclusive, remove_stale_temps, temp_path_for,
                          write_bytes_atomic, write_json_atomic, write_text_atomic)


def leftovers(directory):
    """Temp files this module left in a folder."""
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.mark.parametrize("write, payload, read", [
    (write_bytes_atomic, b"\x00\x01bytes", lambda p: p.read_bytes()),
    (write_text_atomic, "text é\n", lambda p: p.read_text(encoding="utf-8")),
    (write_json_atomic, {"a": [1, 2.5, None]}, lambda p: json.loads(p.read_text())),
])
def test_write_creates_and_replaces_without_leftovers(tmp_path, write, payload, read):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    write(target, payload)
    assert read(target) == payload
    assert leftovers(tmp_path) == []


def test_temp_path_is_hidden_unused_and_in_the_same_folder(tmp_path):
    first, second = temp_path_for(tmp_path / "x.json"), temp_path_for(tmp_path / "x.json")
    assert first.parent == tmp_path and first.name.startswith(".x.json.tmp-")
    assert first != second and not first.exists()


def test_failure_inside_atomic_path_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_path_refuses_when_nothing_was_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(tmp_path / "f"):
        pass
    assert not (tmp_path / "f").exists()


def test_atomic_path_publishes_a_directory(tmp_path):
    target = tmp_path / "models" / "v1"
    target.parent.mkdir()
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "model.txt").write_text("weights")
    assert (target / "model.txt").read_text() == "weights"
    assert leftovers(target.parent) == []


def test_publish_exclusive_refuses_existing_target_and_leaves_both_files(tmp_path):
    target, tmp = tmp_path / "day=1914.parquet", tmp_path / ".day.tmp-1"
    tmp.write_text("first")
    publish_exclusive(tmp, target)
    assert target.read_text() == "first" and not tmp.exists()
    tmp.write_text("second")
    with pytest.raises(FileExistsError, match="already exists"):
        publish_exclusive(tmp, target)
    assert target.read_text() == "first" and tmp.read_text() == "second"


def test_exclusive_write_refuses_existing_target_and_cleans_up(tmp_path):
    target = tmp_path / "f"
    write_text_atomic(target, "first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_text_atomic(target, "second", exclusive=True)
    assert target.read_text() == "first"
    assert leftovers(tmp_path) == []


def test_remove_stale_temps_removes_only_old_temp_files(tmp_path):
    old, fresh, target = temp_path_for(tmp_path / "a"), temp_path_for(tmp_path / "b"), tmp_path / "a"
    for path in (old, fresh, target):
        path.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(target, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temps(tmp_path, older_than_s=3600) == [old]
    assert fresh.exists() and target.exists() and not old.exists()


SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from m5ops.stores.atomic import atomic_path
    target, chunks = sys.argv[1], int(sys.argv[2])
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            for i in range(chunks):
                handle.write(b"N" * 65536)
                handle.flush()
                if i == 0:
                    print("writing", flush=True)
                time.sleep(0.01)
    print("done", flush=True)
""")


def test_writer_killed_mid_write_leaves_old_content(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"O" * 1000)
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), "500"],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    assert target.read_bytes() == b"O" * 1000
    partial = [tmp_path / name for name in leftovers(tmp_path)]
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < 500 * 65536  # killed mid-write


LOOPING_WRITER = textwrap.dedent("""
    import sys
    from m5ops.stores.atomic import write_bytes_atomic
    target, size = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    i = 0
    while True:
        write_bytes_atomic(target, (b"a" if i % 2 else b"b") * size)
        i += 1
""")


def test_writer_killed_at_random_moments_never_leaves_a_partial_file(tmp_path):
    target, size = tmp_path / "f.bin", 4 * 1024 * 1024
    target.write_bytes(b"a" * size)
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", LOOPING_WRITER, str(target), str(size)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.02, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        content = target.read_bytes()
        assert content in (b"a" * size, b"b" * size)
    remove_stale_temps(tmp_path, older_than_s=0)
    assert leftovers(tmp_path) == []
