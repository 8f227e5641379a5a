"""The model registry: lifecycle, names, malformed files, and many processes writing at once."""
import json
import subprocess
import sys
import textwrap
import time

import pytest

from m5ops.errors import RegistryError
from m5ops.stores.registry import Registry, is_due


def version(sim_day=1900, **extra):
    """A version record as a training task would pass it."""
    return {"trained_at": "2026-11-26T10:00:00+00:00", "sim_date": "2016-04-11",
            "sim_day": sim_day, "cutoff_day": sim_day - 28, "rows": 1000, "duration_s": 1.5,
            "artifact": "models/m/v1", "metrics": {"train_mae": 0.9}, **extra}


@pytest.fixture
def registry(tmp_path):
    return Registry.create(tmp_path / "registry.json")


def test_create_writes_an_empty_registry_and_refuses_an_existing_file(tmp_path):
    path = tmp_path / "registry.json"
    Registry.create(path)
    assert json.loads(path.read_text()) == {"format": 2, "models": {}, "deleted": {}}
    with pytest.raises(RegistryError, match="already exists"):
        Registry.create(path)


def test_ensure_exists_creates_once_and_keeps_existing_models(tmp_path):
    registry = Registry(tmp_path / "ws" / "registry.json").ensure_exists()
    registry.add_model("m", "lightgbm", {})
    assert list(registry.ensure_exists().models()) == ["m"]


def test_missing_registry_says_how_to_create_it(tmp_path):
    with pytest.raises(RegistryError, match="m5ops init"):
        Registry(tmp_path / "registry.json").models()


def test_model_lifecycle_create_pause_resume_train_remove(registry):
    created = registry.add_model("lgbm", "lightgbm", {"num_leaves": 31})
    assert created["schedule"] == {"every_days": 7, "active": True, "retrain": ["weekly"]}
    assert created["current_version"] is None and created["versions"] == []
    assert registry.set_active("lgbm", False)["schedule"]["active"] is False
    assert registry.get("lgbm")["schedule"]["active"] is False
    registry.set_active("lgbm", True)
    assert registry.next_version_id("lgbm") == "v1"
    assert registry.add_version("lgbm", version(1900)) == "v1"
    assert registry.add_version("lgbm", version(1907)) == "v2"
    model = registry.get("lgbm")
    assert [v["id"] for v in model["versions"]] == ["v1", "v2"]
    assert model["current_version"] == "v2" and registry.current("lgbm")["sim_day"] == 1907
    removed = registry.remove_model("lgbm")
    assert removed["current_version"] == "v2"
    assert registry.models() == {}
    [stone] = registry.deleted()["lgbm"]
    assert stone["kind"] == "lightgbm" and stone["versions"] == 2 and stone["deleted_at"]


def test_deleted_name_can_be_reused_and_tombstones_keep_both(registry):
    registry.add_model("m", "lightgbm", {})
    registry.add_version("m", version())
    registry.remove_model("m")
    with pytest.raises(RegistryError, match="was deleted"):
        registry.get("m")
    registry.add_model("m", "seasonal_naive", {})
    assert registry.next_version_id("m") == "v1"
    registry.remove_model("m")
    assert [s["kind"] for s in registry.deleted()["m"]] == ["lightgbm", "seasonal_naive"]


def test_manual_training_of_paused_model_resumes_it_in_the_same_update(registry):
    registry.add_model("m", "lightgbm", {}, active=False)
    registry.add_version("m", version(), activate=True, manual=True)
    model = registry.get("m")
    assert model["schedule"]["active"] is True
    assert model["last_manual_train"] == model["versions"][0]["trained_at"]


def test_version_prepared_under_a_taken_id_is_refused(registry):
    registry.add_model("m", "lightgbm", {})
    planned = registry.next_version_id("m")
    registry.add_version("m", version())  # someone else registers first
    with pytest.raises(RegistryError, match="next id is 'v2'"):
        registry.add_version("m", version(id=planned))
    assert registry.add_version("m", version(id="v2")) == "v2"


@pytest.mark.parametrize("missing", ["sim_day", "sim_date", "cutoff_day", "artifact"])
def test_version_without_a_required_field_is_refused(registry, missing):
    registry.add_model("m", "lightgbm", {})
    record = version()
    del record[missing]
    with pytest.raises(RegistryError, match=missing):
        registry.add_version("m", record)
    assert registry.get("m")["versions"] == []


def test_metric_nan_and_numpy_values_are_stored_as_strict_json(registry):
    np = pytest.importorskip("numpy")
    registry.add_model("m", "lightgbm", {"alpha": np.float32(0.5), "leaves": np.int64(31)})
    registry.add_version("m", version(metrics={"mae": float("nan"), "rows": np.int64(3)}))
    text = registry.path.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert registry.current("m")["metrics"] == {"mae": None, "rows": 3}


@pytest.mark.parametrize("sim_day, active, trained_on, due", [
    (1900, True, None, True),      # never trained
    (1906, True, 1900, False),     # 6 days after its version
    (1907, True, 1900, True),      # 7 days: weekly retraining
    (1950, False, 1900, False),    # paused
    (1900, False, None, False),    # paused and never trained
])
def test_due_for_training(registry, sim_day, active, trained_on, due):
    registry.add_model("m", "lightgbm", {}, active=active)
    if trained_on is not None:
        registry.add_version("m", version(trained_on))
    assert registry.due_for_training(sim_day) == (["m"] if due else [])


@pytest.mark.parametrize("name", ["a", "0", "lgbm-tweedie", "m_1", "a" * 63, "9-x_y"])
def test_valid_names_are_accepted(registry, name):
    assert registry.add_model(name, "lightgbm", {})["name"] == name


@pytest.mark.parametrize("name", ["", "X", "Lgbm", "../x", "a/b", "-a", "_a", "a b", "a.b",
                                  "é", "a" * 64, None, 5])
def test_invalid_names_are_refused_quoting_the_rule(registry, name):
    with pytest.raises(RegistryError, match=r"\[a-z0-9\]\[a-z0-9_-\]\{0,62\}"):
        registry.add_model(name, "lightgbm", {})
    assert registry.models() == {}


def test_unknown_model_error_names_it_and_lists_known_models(registry):
    registry.add_model("alpha", "lightgbm", {})
    registry.add_model("beta", "lightgbm", {})
    with pytest.raises(RegistryError, match="'gamma'.*known models: alpha, beta"):
        registry.set_active("gamma", False)


def test_duplicate_name_is_refused(registry):
    registry.add_model("m", "lightgbm", {})
    with pytest.raises(RegistryError, match="already exists"):
        registry.add_model("m", "seasonal_naive", {})
    assert registry.get("m")["kind"] == "lightgbm"


def test_change_that_would_break_the_shape_writes_nothing(registry):
    registry.add_model("m", "lightgbm", {})
    before = registry.path.read_bytes()
    with pytest.raises(RegistryError, match="nothing was written"):
        registry.update(lambda data: data["models"]["m"]["schedule"].pop("active"))
    with pytest.raises(KeyError):
        registry.update(lambda data: data["models"]["nope"])
    assert registry.path.read_bytes() == before


VALID = json.dumps({"format": 1, "deleted": {}, "models": {"m": {
    "name": "m", "kind": "lightgbm", "params": {}, "created": "2026-11-26T10:00:00+00:00",
    "schedule": {"every_days": 7, "active": True}, "versions": [], "current_version": None}}},
    indent=2)
MALFORMED = {
    "truncated": (VALID[: len(VALID) // 2], r"not valid JSON: .* at line \d+, column \d+"),
    "empty": ("", "not valid JSON: .* at line 1, column 1"),
    "list": ("[]", "top level is list"),
    "no models": ('{"format": 1, "deleted": {}}', "'models' is missing"),
    "newer format": (VALID.replace('"format": 1', '"format": 3'), "'format' is 3"),
    "bad schedule": (VALID.replace('"active": true', '"active": "yes"'),
                     r"models\['m'\]\.schedule\.active is 'yes'"),
    "bad current": (VALID.replace('"current_version": null', '"current_version": "v3"'),
                    r"models\['m'\]\.current_version 'v3'"),
    "name mismatch": (VALID.replace('"name": "m"', '"name": "n"'), r"models\['m'\]\.name"),
}
WRITES = {
    "add_model": lambda r: r.add_model("new", "lightgbm", {}),
    "set_active": lambda r: r.set_active("m", False),
    "add_version": lambda r: r.add_version("m", version()),
    "remove_model": lambda r: r.remove_model("m"),
    "update": lambda r: r.update(lambda data: None),
    "ensure_exists": lambda r: r.ensure_exists(),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_file_is_reported_with_file_and_position(tmp_path, case):
    content, pattern = MALFORMED[case]
    path = tmp_path / "registry.json"
    path.write_text(content)
    with pytest.raises(RegistryError, match=pattern) as caught:
        Registry(path).models()
    message = str(caught.value)
    assert str(path) in message and "restore it" in message


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("case", ["truncated", "list", "bad schedule"])
def test_malformed_file_is_never_overwritten(tmp_path, case, write):
    path = tmp_path / "registry.json"
    path.write_text(MALFORMED[case][0])
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="left untouched"):
        WRITES[write](Registry(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["registry.json"]


WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from m5ops.stores.registry import Registry
    path, worker, rounds, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    registry = Registry(path)
    for k in range(rounds):
        name = f"w{worker}-{k}"
        registry.add_model(name, "lightgbm", {"k": k})
        registry.add_version("shared", {"sim_date": "2016-04-11", "sim_day": 1900,
            "cutoff_day": 1872, "artifact": "models/shared", "worker": worker, "seq": k})
        registry.set_active(name, False)
""")
READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from m5ops.stores.registry import Registry
    path, go, done = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    reads = 0
    while not done.exists():
        Registry(path).models()  # raises (and exits non-zero) on any torn or invalid read
        reads += 1
        time.sleep(0.002)  # leave the 2 cores to the writers
    print(reads)
""")


def test_concurrent_writers_lose_no_change_and_readers_never_see_a_torn_file(registry, tmp_path):
    workers, rounds = 3, 40  # 3 processes x 120 locked changes, plus a reader
    registry.add_model("shared", "lightgbm", {})
    go, done = tmp_path / "go", tmp_path / "done"
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(registry.path), str(w),
                               str(rounds), str(go)], stdout=subprocess.PIPE, text=True)
             for w in range(workers)]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(registry.path), str(go), str(done)],
                              stdout=subprocess.PIPE, text=True)
    assert {p.stdout.readline().strip() for p in [*procs, reader]} == {"ready"}
    go.touch()  # every process is past its imports: they start together
    for proc in procs:
        proc.communicate(timeout=60)
    assert [proc.returncode for proc in procs] == [0] * workers
    done.touch()
    reads, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0 and int(reads) > 0
    print(f"{workers * rounds * 3} changes in {time.monotonic() - started:.1f} s, {reads.strip()} reads")
    assert_every_change_kept(json.loads(registry.path.read_text()), workers, rounds)


def assert_every_change_kept(data, workers, rounds):
    """Every model, pause and version the workers made is in the final file, ids contiguous."""
    assert len(data["models"]) == 1 + workers * rounds
    assert all(not m["schedule"]["active"] for n, m in data["models"].items() if n != "shared")
    versions = data["models"]["shared"]["versions"]
    assert [v["id"] for v in versions] == [f"v{i}" for i in range(1, workers * rounds + 1)]
    assert sorted((v["worker"], v["seq"]) for v in versions) == [
        (w, k) for w in range(workers) for k in range(rounds)]
    assert data["models"]["shared"]["current_version"] == f"v{workers * rounds}"
    switches = sum(a["worker"] != b["worker"] for a, b in zip(versions, versions[1:]))
    assert switches > workers - 1  # the writers really interleaved, not ran one after another


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    with FileLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(30)
""")


def test_lock_held_too_long_is_reported_and_nothing_is_written(registry, monkeypatch):
    monkeypatch.setattr("m5ops.stores.registry.LOCK_TIMEOUT_S", 0.3)
    before = registry.path.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, f"{registry.path}.lock"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RegistryError, match="stayed locked by another process"):
            Registry(registry.path).add_model("m", "lightgbm", {})
    finally:
        holder.kill()
        holder.communicate()
    assert registry.path.read_bytes() == before
    Registry(registry.path).add_model("m", "lightgbm", {})  # a killed holder frees the lock


# -- format 2: version statuses, versions beside the current one, the upgrade of format-1 files -------------
FORMAT_1 = {"format": 1, "deleted": {}, "models": {"m": {
    "name": "m", "kind": "lightgbm", "params": {}, "created": "2026-11-26T10:00:00+00:00",
    "schedule": {"every_days": 7, "active": True}, "current_version": "v2",
    "versions": [{**version(1900), "id": "v1", "status": "ready"}, {**version(1907), "id": "v2", "status": "ready"}]}}}


def test_a_format_1_file_is_upgraded_in_place_once_validated(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(FORMAT_1))
    model = Registry(path).get("m")  # a plain read upgrades the file
    assert [(v["id"], v["status"], v["artifact_kept"]) for v in model["versions"]] == [
        ("v1", "retired", True), ("v2", "current", True)]
    stored = json.loads(path.read_text())
    assert stored["format"] == 2 and stored["models"]["m"] == model


def test_a_malformed_format_1_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "registry.json"
    broken = json.loads(json.dumps(FORMAT_1))
    broken["models"]["m"]["current_version"] = "v9"
    path.write_text(json.dumps(broken))
    before = path.read_bytes()
    with pytest.raises(RegistryError, match=r"not a format-1 registry: models\['m'\].current_version 'v9'"):
        Registry(path).models()
    assert path.read_bytes() == before


def test_a_rejected_version_is_added_beside_the_current_one(registry):
    registry.add_model("m", "lightgbm", {})
    registry.add_version("m", version(1900))
    assert registry.add_version("m", {**version(1907), "status": "rejected"}, make_current=False) == "v2"
    model = registry.get("m")
    assert model["current_version"] == "v1" and [v["status"] for v in model["versions"]] == ["current", "rejected"]
    assert not is_due(model, 1908)  # the rejected training counts: due again a week after it, not every day
    assert is_due(model, 1914)
    with pytest.raises(RegistryError, match="needs status rejected or retired"):
        registry.add_version("m", {**version(1914), "status": "current"}, make_current=False)


def test_a_new_current_version_retires_the_old_one_and_remembers_it(registry):
    registry.add_model("m", "lightgbm", {})
    registry.add_version("m", version(1900))
    registry.add_version("m", version(1907))
    v1, v2 = registry.get("m")["versions"]
    assert (v1["status"], v2["status"], v2["previous"]) == ("retired", "current", "v1")
    assert registry.set_current("m", "v1") == "v2"
    v1, v2 = registry.get("m")["versions"]
    assert (v1["status"], v2["status"], registry.get("m")["current_version"]) == ("current", "retired", "v1")


def test_an_artifact_removed_by_retention_cannot_become_current_again(registry):
    registry.add_model("m", "lightgbm", {})
    for day in (1900, 1907, 1914):
        registry.add_version("m", version(day))
    assert registry.mark_artifacts_removed("m", ["v1"]) == ["v1"]
    assert registry.get("m")["versions"][0]["artifact_kept"] is False
    with pytest.raises(RegistryError, match="v1's artifact was removed by retention"):
        registry.set_current("m", "v1")
    with pytest.raises(RegistryError, match="refused to remove the artifact of m's current version v3"):
        registry.mark_artifacts_removed("m", ["v3"])
    with pytest.raises(RegistryError, match="has no version 'v7'; its versions: v1, v2, v3"):
        registry.set_current("m", "v7")


def test_two_versions_marked_current_are_reported_as_malformed(registry):
    registry.add_model("m", "lightgbm", {})
    registry.add_version("m", version(1900))
    registry.add_version("m", version(1907))
    data = json.loads(registry.path.read_text())
    data["models"]["m"]["versions"][0]["status"] = "current"
    registry.path.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"the versions marked current are \['v1', 'v2'\]"):
        registry.models()
