"""What a benchmark's JSON says of the machine it ran on (benchmarks are compared only on like machines)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import torch


def machine_info(**extra: Any) -> dict[str, Any]:
    """CPUs, platform, Python and torch versions and the load average when the run ended, plus ``extra``."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        **extra,
    }
