"""Benchmark 6: start-up of read commands against the interpreter's own (#15.18, #17).

A command's start-up is what a script pays per call (98 `case open` calls, a cron probe):
the installed `dk2020flow` command on a database with the demo's programme (98
organisations, 2020-2023 simulated: `dk2020flow demo`, made once per run), median of
several runs, next to `python -c pass` on the same machine in the same invocation (only
the ratio compares between machines).

Every command runs with a bytecode cache, as an installed package has one (pip compiles
it; an editable install writes it on first use): PYTHONDONTWRITEBYTECODE is dropped and
PYTHONPYCACHEPREFIX points into the run's scratch folder, warmed by one unmeasured call of
each command. (Without a cache every call compiles dk2020flow's own modules again:
docs/performance.md, "Start-up", says what that costs.) Likewise the parsed-definition
cache (``definition/cache.py``, what a user's ``~/.cache/dk2020flow`` holds after the first
command) lives in the scratch folder, filled by the same warm-up calls.

    python bench/startup.py              # 9 runs of each, prints the table (wall and CPU)
    python bench/startup.py --runs 5 --demo DIR   # reuse (or make) the demo in DIR
    python bench/startup.py --base SRC   # also the package in SRC (e.g. an unpacked
                                         # `git archive` of a commit's src/), interleaved
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import Result, Workdir

SECTION = "6. start-up"
PYTHON = "python -c pass"

# label, arguments, the exit codes the command may end with (scheduler status: 2, no daemon).
COMMANDS: tuple[tuple[str, tuple[str, ...], frozenset[int]], ...] = (
    ("dk2020flow version", ("version",), frozenset({0})),
    ("dk2020flow case list --help", ("case", "list", "--help"), frozenset({0})),
    ("dk2020flow case list (98 cases)", ("case", "list"), frozenset({0})),
    ("dk2020flow scheduler status", ("scheduler", "status"), frozenset({0, 1, 2})),
    ("dk2020flow outbox list --limit 20", ("outbox", "list", "--limit", "20"), frozenset({0})),
    ("dk2020flow case show '#5'", ("case", "show", "#5"), frozenset({0})),
    ("dk2020flow report", ("report",), frozenset({0})),
)


def _cli() -> list[str]:
    # The console script next to this interpreter, not a version manager's shim on PATH
    # (pyenv's bash shim alone adds about 0.3 s to every call here).
    script = Path(sys.executable).parent / "dk2020flow"
    found = str(script) if script.is_file() else shutil.which("dk2020flow")
    return [found] if found else [sys.executable, "-m", "dk2020flow"]


def _environment(cache: Path, source: Path | None = None) -> dict[str, str]:
    """The commands' environment: the bytecode and definition caches in ``cache``; with
    ``source``, the package found there first (an installed one's ``src`` folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    env["DK2020FLOW_CACHE_DIR"] = str(cache / "definitions")
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    return env


def _run(
    command: list[str], cwd: Path, env: dict[str, str], allowed: frozenset[int]
) -> tuple[float, float]:
    """(wall time, CPU time of the child) of one call, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in allowed:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-300:]}"
        )
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def _median(
    command: list[str], runs: int, cwd: Path, env: dict[str, str], allowed: frozenset[int]
) -> tuple[float, float]:
    """Median wall and median CPU time over ``runs`` calls (CPU moves less with the load)."""
    samples = [_run(command, cwd, env, allowed) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def _medians(
    command: list[str],
    runs: int,
    cwd: Path,
    envs: list[dict[str, str]],
    allowed: frozenset[int],
) -> list[tuple[float, float]]:
    """``_median`` of each environment, their runs interleaved (one of each in turn), so
    that a change in the machine's load falls on all of them alike."""
    samples: list[list[tuple[float, float]]] = [[] for _ in envs]
    for _ in range(runs):
        for taken, env in zip(samples, envs, strict=True):
            taken.append(_run(command, cwd, env, allowed))
    return [
        (statistics.median(s[0] for s in taken), statistics.median(s[1] for s in taken))
        for taken in samples
    ]


def prepare_demo(cli: list[str], folder: Path, env: dict[str, str]) -> Path:
    """The demo's database in ``folder`` (made by `dk2020flow demo` unless it is there)."""
    if not (folder / "dk2020flow.db").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*cli, "demo", "--dir", str(folder)], env=env, check=True, capture_output=True
        )
    return folder


def startup(
    work: Workdir, runs: int = 9, demo: Path | None = None, base_source: Path | None = None
) -> list[Result]:
    cli = _cli()
    env = _environment(work.path / "caches")
    folder = prepare_demo(cli, demo or work.path / "demo", env)
    variants = [("", env)]
    if base_source is not None:
        variants.append((" [base]", _environment(work.path / "caches-base", base_source)))
    for _, args, allowed in COMMANDS:  # warm the bytecode and definition caches
        for _, variant in variants:
            _run([*cli, *args], folder, variant, allowed)
    base, base_cpu = _median([sys.executable, "-c", "pass"], runs, folder, env, frozenset({0}))
    results = [
        Result(
            section=SECTION,
            name=PYTHON,
            value=base,
            unit="s",
            note=f"median of {runs}; CPU {base_cpu:.3f} s",
            extra={"cpu_s": base_cpu},
        )
    ]
    for label, args, allowed in COMMANDS:
        measured = _medians([*cli, *args], runs, folder, [v for _, v in variants], allowed)
        for (suffix, _), (seconds, cpu) in zip(variants, measured, strict=True):
            results.append(
                Result(
                    section=SECTION,
                    name=label + suffix,
                    value=seconds,
                    unit="s",
                    note=(
                        f"median of {runs}; {seconds / base:.1f} x `python -c pass`; "
                        f"CPU {cpu:.3f} s ({cpu / base_cpu:.1f} x)"
                    ),
                    extra={"ratio_to_python": seconds / base, "cpu_s": cpu},
                )
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (median)")
    parser.add_argument("--demo", type=Path, help="folder of a demo to reuse (made if missing)")
    parser.add_argument(
        "--base", type=Path, help="also run the package in this src folder, interleaved"
    )
    args = parser.parse_args()
    work = Workdir()
    try:
        for r in startup(work, runs=args.runs, demo=args.demo, base_source=args.base):
            print(f"{r.name:42s} {r.value:7.3f} s  {r.note}")
    finally:
        work.cleanup()


if __name__ == "__main__":
    main()
