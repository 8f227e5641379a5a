"""Fixtures shared by every test module: the repository root and the real M5 slice."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def m5_dir() -> Path:
    """The real M5 slice: $M5_DATA_DIR, else <repo root>/../shared/data/m5; skipped if absent, failed on CI."""
    path = Path(os.environ.get("M5_DATA_DIR") or REPO_ROOT.parent / "shared" / "data" / "m5")
    if not path.is_dir():
        message = f"real M5 slice not found at {path}: set M5_DATA_DIR"
        # on CI a missing slice is a broken setup, not a reason to pass quietly
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_template(m5_dir, tmp_path_factory) -> Path:
    """A workspace from the real slice (2 stores, last 400 days, 56 real days held back), built once."""
    from m5ops.pipeline.workspace_init import InitOptions, init_workspace

    home = tmp_path_factory.mktemp("real") / "ws"
    init_workspace(home, InitOptions(source="m5", m5_dir=str(m5_dir), subset={"stores": ["CA_1", "TX_1"]},
                                     days=400, progress=False))
    return home


@pytest.fixture
def real_workspace(real_template, tmp_path) -> Path:
    """A private copy of the real-slice workspace that a test may change."""
    import shutil

    home = tmp_path / "ws"
    shutil.copytree(real_template, home)
    return home
