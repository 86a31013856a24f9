"""Benchmark 6: start-up of a read command against the interpreter's own (#15.18).

A command's start-up is what a script pays per call (98 `case open` calls, a cron probe):
the installed `dk2020flow` command, median of several runs, next to `python -c pass` on
the same machine in the same invocation (only the ratio compares between machines).

    python bench/startup.py          # 9 runs of each, prints the table
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_DIR, Result, Workdir

SECTION = "6. start-up"
PYTHON = "python -c pass"


def _median(command: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def startup(work: Workdir, runs: int = 9) -> list[Result]:
    # The console script next to this interpreter, not a version manager's shim on PATH
    # (pyenv's bash shim alone adds about 0.3 s to every call here).
    script = Path(sys.executable).parent / "dk2020flow"
    found = str(script) if script.is_file() else shutil.which("dk2020flow")
    cli = [found] if found else [sys.executable, "-m", "dk2020flow"]
    url = work.sqlite("startup")
    subprocess.run([*cli, "db", "upgrade", "--db", url], check=True, capture_output=True)
    workflow = str(REPO_DIR / "workflows" / "dk2020.yaml")
    subprocess.run(
        [*cli, "workflow", "load", workflow, "--db", url], check=True, capture_output=True
    )
    for name in ("Aarhus", "Odense", "Aalborg"):
        subprocess.run(
            [*cli, "case", "open", "dk2020", name, "--db", url, "--now", "2020-06-20"],
            check=True,
            capture_output=True,
        )
    base = _median([sys.executable, "-c", "pass"], runs, work.path)
    results = [Result(section=SECTION, name=PYTHON, value=base, unit="s", note=f"median of {runs}")]
    for label, args in (
        ("dk2020flow case list --help", ["case", "list", "--help"]),
        ("dk2020flow case list (3 cases, SQLite)", ["case", "list", "--db", url]),
        ("dk2020flow version", ["version"]),
    ):
        seconds = _median([*cli, *args], runs, work.path)
        results.append(
            Result(
                section=SECTION,
                name=label,
                value=seconds,
                unit="s",
                note=f"median of {runs}; {seconds / base:.1f} x `python -c pass`",
                extra={"ratio_to_python": seconds / base},
            )
        )
    return results


def main() -> None:
    work = Workdir()
    try:
        for r in startup(work):
            print(f"{r.name:45s} {r.value:7.3f} s  {r.note}")
    finally:
        work.cleanup()


if __name__ == "__main__":
    main()
