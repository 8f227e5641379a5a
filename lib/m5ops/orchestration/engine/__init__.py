"""The ``m5ops`` Papermill engine (``warm``), imported through this package so that Papermill comes first.

The engine is registered in Papermill's ``papermill.engine`` entry-point group, and Papermill
loads its entry points while it is itself being imported. Were the engine's own module the first
to import Papermill, Papermill would load that module half-made and fail on the missing class;
importing Papermill here, before ``warm``, lets its entry-point loading import ``warm`` whole.
"""
import papermill  # noqa: F401  (first: see above)

from m5ops.orchestration.engine.warm import (  # noqa: E402
    ENGINE_NAME, HandedKernelClient, HandedKernelManager, WarmKernelEngine, register)

__all__ = ["ENGINE_NAME", "HandedKernelClient", "HandedKernelManager", "WarmKernelEngine", "register"]
