"""The project's errors: a leaf module that imports nothing of the project and nothing heavy."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

#: what one error line shows of a value: this many characters of a text, items of a list or
#: mapping, and levels of nesting. A value can come from a file of any size (a YAML alias
#: expands to millions of items): the message must stay one short line whatever it holds.
SHOWN_CHARS = 300
SHOWN_ITEMS = 8
SHOWN_DEPTH = 3


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a readable size (at most about :data:`SHOWN_CHARS` characters): long texts keep
    their ends, long lists and mappings their first items, deep nesting shows ``...``; the order of a mapping's
    keys is kept."""
    return _cut(_shown(value, 0))


def _shown(value: Any, depth: int) -> str:
    if isinstance(value, (list, tuple, Mapping)):
        if depth >= SHOWN_DEPTH:
            return "[...]" if isinstance(value, list) else "(...)" if isinstance(value, tuple) else "{...}"
        items = list(islice(value.items() if isinstance(value, Mapping) else value, SHOWN_ITEMS))
        more = len(value) - SHOWN_ITEMS
        if isinstance(value, Mapping):
            parts = [f"{_shown(k, depth + 1)}: {_shown(v, depth + 1)}" for k, v in items]
        else:
            parts = [_shown(v, depth + 1) for v in items]
        if more > 0:
            parts.append(f"... ({more} more)")
        inner = ", ".join(parts)
        if isinstance(value, Mapping):
            return "{" + inner + "}"
        if isinstance(value, tuple):
            return "(" + inner + ("," if len(value) == 1 else "") + ")"
        return "[" + inner + "]"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of {len(str(abs(value))) if value.bit_length() < 10_000 else 'many'} digits>"
    return _cut(repr(value))


def _cut(text: str) -> str:
    """``text`` if it is short enough, else its two ends around a count of what was left out: at most
    :data:`SHOWN_CHARS` characters in all."""
    if len(text) <= SHOWN_CHARS:
        return text
    half = (SHOWN_CHARS - len(f"...({len(text)} characters)...")) // 2
    return f"{text[:half]}...({len(text) - 2 * half} characters)...{text[-half:]}"


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line: field, value, what is allowed.

    The value is shown cut to a readable size (:func:`short_repr`), the field too.
    """

    def __init__(self, field_path: str, value: Any, allowed: str):
        self.field = field_path
        self.value = value
        self.allowed = allowed
        super().__init__(f"{_cut(str(field_path))}: got {short_repr(value)}; {allowed}")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float):
        self.epoch = epoch
        self.loss = loss
        super().__init__(f"training diverged: loss {loss} at epoch {epoch} (try a lower training.lr)")
