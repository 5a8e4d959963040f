"""The project's error types: bad input a user can fix, reported in one line with exit code 2.

Anything else (a bug, say) is not caught by the command lines and shows its traceback.
"""

from __future__ import annotations


class VrbError(Exception):
    """Base of the errors a command line reports in one line."""


class UsageError(VrbError):
    """Bad command-line input (a flag, a folder that already holds a run, nothing to resume)."""


class ConfigError(VrbError):
    """A config field with a bad value or name; the message names the field and what was expected."""
