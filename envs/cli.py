"""What every command line of the project shares: bad input is one line on stderr and exit code 2.

``ArgumentParser`` here prints ``PROG: error: MESSAGE`` alone (argparse's own prints the usage first, which
buries the message); ``--help`` still shows the usage, every default and every choice.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
