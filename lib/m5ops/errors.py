"""One exception hierarchy; every message says what is wrong and what to do."""


class M5opsError(Exception):
    """Base of every error m5ops raises on purpose; the CLI prints it on one line, exit 2."""


class DataError(M5opsError):
    """Input data (M5 files, the store) is malformed or inconsistent."""


class WorkspaceError(M5opsError):
    """The workspace is missing, already exists, or is in a state that forbids the request."""


class RegistryError(M5opsError):
    """The model registry refused a change or could not be read."""


class ParameterError(M5opsError):
    """A model or task parameter is of the wrong type or out of range."""


class TaskError(M5opsError):
    """A task notebook failed or timed out."""


class RunError(M5opsError):
    """The run store refused a request (unknown run, wrong state) or could not be read."""
