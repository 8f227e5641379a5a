"""Retention of version artifacts: the newest versions of each model stay loadable for a rollback.

The artifacts of a model's newest ``keep`` versions (by number, rejected ones included) and of
its current version are kept; older ones are deleted. Their registry records stay, marked
``retired`` with ``artifact_kept: false``, so the lineage of every version ever trained remains.
The registry is marked first, then the folders removed: a crash in between leaves an unused
folder, never a record that points at a missing artifact.
"""
from __future__ import annotations

import logging
import shutil

from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry, version_number

log = logging.getLogger("m5ops.pipeline.retention")


def to_remove(model: dict, keep: int) -> list[str]:
    """Ids of the versions whose artifacts go: kept, not among the newest ``keep``, not current (pure)."""
    newest = sorted(model["versions"], key=lambda v: version_number(v["id"]), reverse=True)[:keep]
    spared = {v["id"] for v in newest} | {model.get("current_version")}
    return [v["id"] for v in model["versions"] if v.get("artifact_kept") and v["id"] not in spared]


def keep_recent(workspace: Workspace, name: str, keep: int) -> list[str]:
    """Delete the artifacts of ``name``'s versions beyond the newest ``keep``; returns their ids."""
    registry = Registry(workspace.registry_path)
    model = registry.get(name)
    removed = to_remove(model, keep)
    if not removed:
        return []
    registry.mark_artifacts_removed(name, removed)
    by_id = {v["id"]: v for v in model["versions"]}
    for vid in removed:
        folder = (workspace.home / by_id[vid]["artifact"]).resolve()
        if folder.is_relative_to(workspace.models_dir / name):  # never outside the model's folder
            shutil.rmtree(folder, ignore_errors=True)
        else:
            log.warning("retention: %s %s's artifact %s lies outside %s; left in place", name, vid, folder,
                        workspace.models_dir / name)
    log.info("retention: removed the artifacts of %s %s (the newest %d versions are kept)",
             name, ", ".join(removed), keep)
    return removed
