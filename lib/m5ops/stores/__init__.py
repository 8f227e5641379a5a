"""Persistent state of a workspace: layout, atomic writes, registry, runs.db stores, hold-back record.

Nothing outside this package writes SQL or opens a state file.
"""
