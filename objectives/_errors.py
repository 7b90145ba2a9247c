"""The project's errors: a leaf module that imports nothing of the project and nothing heavy."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line: field, value, what is allowed."""

    def __init__(self, field_path: str, value: Any, allowed: str):
        self.field = field_path
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field_path}: got {value!r}; {allowed}")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float):
        self.epoch = epoch
        self.loss = loss
        super().__init__(f"training diverged: loss {loss} at epoch {epoch} (try a lower training.lr)")
