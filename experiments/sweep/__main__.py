"""``python -m experiments.sweep CONFIG.yaml ...``: see ``experiments.sweep``."""

import sys

from experiments.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
