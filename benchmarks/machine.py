"""What the benchmark scripts record about the CPU machine they ran on (imported by them as a
sibling module: ``python benchmarks/<script>.py`` puts this folder first on ``sys.path``)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str | None:
    """The processor's model name, from ``lscpu`` or ``/proc/cpuinfo`` (``None`` if neither)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def cpu_machine(**extra) -> dict:
    """Model, core counts (all and usable by this process), platform and load average at the
    start, with ``extra`` fields a script adds."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
            "platform": platform.platform(), "load_average_start": load_average(), **extra}


def table_text(table, floatfmt: str = ".3f") -> str:
    """A results DataFrame as a Markdown table (with ``tabulate``) or plain text (without)."""
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return table.round(3).to_string()
    return table.to_markdown(floatfmt=floatfmt)
