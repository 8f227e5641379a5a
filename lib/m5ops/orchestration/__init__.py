"""Running tasks: the notebook executor, jobs and ticks, and the scheduling runner."""
