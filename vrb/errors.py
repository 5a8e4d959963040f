"""The project's error types: bad input a user can fix, reported in one line with exit code 2.

Anything else (a bug, say) is not caught by the command lines and shows its traceback.
"""

from __future__ import annotations

import difflib


class VrbError(Exception):
    """Base of the errors a command line reports in one line."""


class UsageError(VrbError):
    """Bad command-line input (a flag, a folder that already holds a run, nothing to resume)."""


class ConfigError(VrbError):
    """A config field with a bad value or name; the message names the field and what was expected."""


def did_you_mean(word: str, choices: list[str]) -> str:
    """'; did you mean X?' for a near miss among ``choices``, else the choices themselves when they are few."""
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"; expected one of {choices}" if len(choices) <= 12 else ""
