"""Every exception class m5ops raises on purpose; each message says what is wrong and what to do.

The CLI turns a ``RunFailed`` into exit status 1 (a run it carried out failed, or a check found problems) and every other
``M5opsError`` into exit status 2 (the request was refused; nothing was changed).
"""


class M5opsError(Exception):
    """Base of every error m5ops raises on purpose; the CLI prints it on one line."""


class DataError(M5opsError):
    """Input data (M5 files, the day store, a feature frame) is malformed or inconsistent."""


class WorkspaceError(M5opsError):
    """The workspace is missing, already exists, or is in a state that forbids the request."""


class ParameterError(M5opsError):
    """A model, task or command parameter is of the wrong type or out of range."""


class RegistryError(M5opsError):
    """The model registry refused a change or could not be read."""


class StoreError(M5opsError):
    """A state file of the workspace (``runs.db``) could not be opened, read or written."""


class LedgerError(StoreError):
    """The forecast ledger refused a request: an issue stored twice, or one that is not there."""


class RunError(StoreError):
    """The run store refused a request: an unknown run, or a run in the wrong state for it."""


class RunnerError(M5opsError):
    """The runner cannot start as asked (its options, or another runner holds the workspace)."""


class DashboardError(M5opsError):
    """The dashboard cannot be served as asked (address, port, missing notebook)."""


class ModelError(M5opsError):
    """A model cannot do what was asked of it."""


class NotFittedError(ModelError):
    """A model was asked to predict or save before it was fitted."""


class ArtifactError(ModelError):
    """A saved model version is missing, incomplete, or of another kind than asked for."""


class ServingError(M5opsError):
    """A serving change was refused: promote, rollback or a setting that cannot apply as asked."""


class RunFailed(M5opsError):
    """A run that a command carried out ended other than succeeded (exit status 1)."""


class WorkspaceDamaged(RunFailed):
    """``m5ops check`` found problems in the workspace (exit status 1, like a failed run)."""
