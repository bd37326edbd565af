"""The errors rlpad.spark raises besides SparkSettingsError (see settings.py)."""
from __future__ import annotations


class SparkClusterError(RuntimeError):
    """The cluster cannot be reached or gives no executors."""


class TrialError(RuntimeError):
    """A trial raised on every attempt Spark allowed; `trial_id` names it."""

    def __init__(self, message: str, trial_id: str | None = None):
        super().__init__(message)
        self.trial_id = trial_id
