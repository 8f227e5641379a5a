"""The Voila dashboard: ``show()`` builds it for the workspace in ``$M5OPS_HOME``.

``state`` reads the stores into plain data, ``actions`` are what the buttons do, the panels
(``progress_panel``, ``models_panel``, ``create_form``, ``charts``, ``runs_panel``) turn data into widgets, ``app``
puts them together and refreshes them, and ``server`` runs Voila (``m5ops dashboard``).
"""
from __future__ import annotations


def show(home=None, interval: float = 2.0):
    """The live dashboard widget of workspace ``home`` (default ``$M5OPS_HOME``)."""
    from m5ops.dashboard.app import show as _show

    return _show(home, interval)
