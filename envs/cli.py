"""What every command line of the project shares: bad input is one line on stderr and exit code 2.

``ArgumentParser`` here prints ``PROG: error: MESSAGE`` alone (argparse's own prints the usage first, which
buries the message); ``--help`` still shows the usage, every default and every choice.

``command`` wraps a command's ``main`` so that whatever ends it ends in the project's way:

* an error the command names (its bad-input types: a data file, a checkpoint, a config field) or an environment
  failure (a full disk, a read-only or forbidden path: ``ENVIRONMENT_ERRNOS``): ``error: ...`` in one line on
  stderr, exit code 2;
* Ctrl-C (``KeyboardInterrupt``): one line, exit code 130;
* a closed stdout (``... | head -1``): the command ends quietly, exit code 0, without Python's "Exception
  ignored" at exit;
* anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import select
import sys
from collections.abc import Callable
from typing import Any, NoReturn

BAD_INPUT_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a job ended by Ctrl-C
MAX_SEED = 2**32 - 1  # numpy's RandomState, which samples the user's goal, takes seeds 0..MAX_SEED
# failures of the machine a user can fix (space, permissions, a read-only or failing disk), not bugs
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as a terminal shows it: a flag's default where it has one and its help does not name it already,
    and no reStructuredText markup (the descriptions are the modules' docstrings)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text:
            return help_text
        if action.option_strings and action.nargs != 0:
            return f"{help_text} (default: %(default)s)"
        return help_text

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("``", ""))


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) and the project's help formatting."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT)


def seed_type(text: str) -> int:
    """argparse ``type`` of a seed flag: an integer in 0..MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer in 0..{MAX_SEED}")
    return value


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def describe_os_error(exc: OSError) -> str:
    """``FILE: REASON`` of a failed file operation (the target, not a temporary file, where the writer says)."""
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or one_line(exc)
    hint = "; free some space and run it again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{where}: {reason}{hint}"


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real stdout (a test's capture): not a closed pipe
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is left in its buffer goes nowhere at exit instead of raising."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def run_command(
    body: Callable[[], int | None], errors: tuple[type[BaseException], ...] = (), interrupted: str = ""
) -> int:
    """Run a command's body the project's way (module docstring); its return value is the exit code."""
    try:
        code = body()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code or 0
    except errors as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return BAD_INPUT_EXIT
    except KeyboardInterrupt:
        print(f"error: interrupted (Ctrl-C){f'; {interrupted}' if interrupted else ''}", file=sys.stderr)
        return INTERRUPTED_EXIT
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # another pipe (a child process's): not the reader of our output going away
        _silence_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return BAD_INPUT_EXIT


def command(
    *errors: type[BaseException], interrupted: str = ""
) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a ``main``: its run ends as ``run_command`` says, ``errors`` being its one-line error types and
    ``interrupted`` what to tell a user after Ctrl-C (how to resume, say)."""

    def wrap(main: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            return run_command(lambda: main(*args, **kwargs), errors, interrupted)

        return wrapped

    return wrap
