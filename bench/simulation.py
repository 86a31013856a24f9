"""Benchmark 5: the full DK2020 simulation (``dk2020flow simulate``), wall time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import REPO_DIR, Result, Workdir

SECTION = "5. memory"
CLI = "from dk2020flow.cli import main; main()"
MEASURED_CLI = (
    "import atexit, os\n"
    "def _peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            open(os.environ['BENCH_PEAK_FILE'], 'w').write(line.split()[1])\n"
    "atexit.register(_peak)\n"
    "from dk2020flow.cli import main; main()"
)
"""The CLI, writing its peak RSS (VmHWM, kB) to $BENCH_PEAK_FILE as it exits."""
WORKFLOW = REPO_DIR / "workflows" / "dk2020.yaml"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, *args]


def dk2020(work: Workdir) -> list[Result]:
    """Run ``dk2020flow simulate workflows/dk2020.yaml`` as a user does; its own rusage."""
    names = (
        "DK2020 simulation (98 organisations, 2020-2023), wall time",
        "DK2020 simulation, peak RSS",
    )
    probe = subprocess.run(
        _cli("simulate", "--help"), capture_output=True, text=True, timeout=120, check=False
    )
    if probe.returncode != 0:
        reason = "not available yet: `dk2020flow simulate` is not a command of the CLI"
        return [
            Result(
                section=SECTION,
                name=names[0],
                value=None,
                unit="s",
                note=reason,
                status="unavailable",
            ),
            Result(
                section=SECTION,
                name=names[1],
                value=None,
                unit="MB",
                note=reason,
                status="unavailable",
            ),
        ]
    log = work.path / "simulate.log"
    peak_file = work.path / "simulate.peak"
    env = {
        **os.environ,
        "DK2020FLOW_DATABASE_URL": f"sqlite:///{work.path / 'simulate.db'}",
        "BENCH_PEAK_FILE": str(peak_file),
    }
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURED_CLI, "simulate", str(WORKFLOW)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=work.path,
            env=env,
            timeout=600,
            check=False,
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-2:])
        reason = f"`dk2020flow simulate` exited {proc.returncode}: {tail}"[:300]
        return [
            Result(
                section=SECTION, name=names[0], value=None, unit="s", note=reason, status="error"
            ),
            Result(
                section=SECTION, name=names[1], value=None, unit="MB", note=reason, status="error"
            ),
        ]
    return [
        Result(
            section=SECTION,
            name=names[0],
            value=seconds,
            unit="s",
            note="the whole command, interpreter start included; target: under 5 s",
        ),
        Result(
            section=SECTION,
            name=names[1],
            value=int(peak_file.read_text()) / 1024,
            unit="MB",
            note="VmHWM of the simulate process",
        ),
    ]
