"""Benchmark 6: this checkout against another git revision, in the same run (ratio).

    python bench/run.py --only revisions                       # against HEAD
    BENCH_BASE=/tmp/base python bench/run.py --only revisions  # against a worktree

Without ``BENCH_BASE`` the base is ``git worktree add`` of ``BENCH_BASE_REV``
(default ``HEAD``: the committed code, against the working tree's changes) in a
scratch folder, removed afterwards. Each revision runs from its own ``src/``
(``PYTHONPATH=<rev>/src python -m dk2020flow …``), the runs interleaved
(base, this, base, this, …) so the machine's noise falls on both alike:

- the DK2020 simulation as a user runs it (``dk2020flow simulate dk2020 --seed 1``,
  interpreter start included): the median of 3 wall times each;
- dispatch on SQLite: each revision's own ``bench/dispatch.py`` firing the same
  bench workload (``fire_due`` until nothing is due, one daemon), the median of 3
  runs each, in firings/s (moves with the disk: one commit per batch);
- mail delivery to a local SMTP server: each revision's own ``bench/mail.py``
  section (reused connection per batch), the better of 2 runs each, in mails/s.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_DIR, Result

SECTION = "6. revisions"
SIMULATE = ("-m", "dk2020flow", "simulate", "dk2020", "--seed", "1")
MAIL_RUN = (
    "import json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import logging; logging.disable(logging.WARNING)\n"
    "from common import Workdir\n"
    "import mail\n"
    "work = Workdir()\n"
    "try:\n"
    "    rows = mail.delivery(work, int(sys.argv[2]))\n"
    "finally:\n"
    "    work.cleanup()\n"
    "print(json.dumps([r.value for r in rows if 'reused' in r.name]))\n"
)


DISPATCH_RUN = (
    "import json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import logging; logging.disable(logging.WARNING)\n"
    "from common import Workdir\n"
    "import dispatch\n"
    "work = Workdir()\n"
    "try:\n"
    "    rate, note, _ = dispatch.dk2020flow_rate(work.sqlite('revisions'), int(sys.argv[2]), 1)\n"
    "finally:\n"
    "    work.cleanup()\n"
    "print(json.dumps([rate, note]))\n"
)


def _env(root: Path, work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(root / "src"),
        "DK2020FLOW_DATABASE_URL": f"sqlite:///{work / 'unused.db'}",
    }


def _simulate(root: Path, work: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *SIMULATE],
        cwd=work,
        env=_env(root, work),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=900,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{root}: simulate exited {done.returncode}: {' '.join(tail)}")
    return seconds


def _bench_json(root: Path, work: Path, script: str, n: int, what: str) -> list[Any]:
    """Run one revision's own bench code (``script`` with that revision's bench/ and src/),
    and return the JSON list its last line prints."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(root / "bench"), str(n)],
        cwd=work,
        env=_env(root, work),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{root}: the {what} bench exited {done.returncode}: {' '.join(tail)}")
    found: list[Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return found


def _mail(root: Path, work: Path, n: int) -> float:
    [rate] = _bench_json(root, work, MAIL_RUN, n, "mail")
    return float(rate)


def _dispatch(root: Path, work: Path, n: int) -> float:
    rate, note = _bench_json(root, work, DISPATCH_RUN, n, "dispatch")
    if note:
        raise RuntimeError(f"{root}: the dispatch bench did other work than asked: {note}")
    return float(rate)


def _base(scratch: Path) -> tuple[Path, bool]:
    """(the base revision's checkout, whether it was made here)."""
    given = os.environ.get("BENCH_BASE")
    if given:
        return Path(given).resolve(), False
    rev = os.environ.get("BENCH_BASE_REV", "HEAD")
    target = scratch / "base"
    subprocess.run(
        ["git", "-C", str(REPO_DIR), "worktree", "add", "--detach", str(target), rev],
        check=True,
        capture_output=True,
    )
    return target, True


def compare(mail_n: int, dispatch_n: int = 2000, repeat: int = 3) -> list[Result]:
    """Simulation wall time and mails/s: the base revision and this checkout, interleaved."""
    scratch = Path(tempfile.mkdtemp(prefix="dk2020flow-revisions-"))
    base, made = _base(scratch)
    try:
        work = scratch / "work"
        work.mkdir()
        roots = {"base": base, "this": REPO_DIR}
        sim: dict[str, list[float]] = {"base": [], "this": []}
        mails: dict[str, list[float]] = {"base": [], "this": []}
        fired: dict[str, list[float]] = {"base": [], "this": []}
        for _ in range(repeat):
            for label, root in roots.items():
                sim[label].append(_simulate(root, work))
                fired[label].append(_dispatch(root, work, dispatch_n))
        for _ in range(2):
            for label, root in roots.items():
                mails[label].append(_mail(root, work, mail_n))
    finally:
        if made:
            subprocess.run(
                ["git", "-C", str(REPO_DIR), "worktree", "remove", "--force", str(base)],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    before, after = statistics.median(sim["base"]), statistics.median(sim["this"])
    mail_before, mail_after = max(mails["base"]), max(mails["this"])
    fire_before, fire_after = statistics.median(fired["base"]), statistics.median(fired["this"])
    fire_runs = ", ".join(
        f"{a:.0f}/{b:.0f}" for a, b in zip(fired["base"], fired["this"], strict=True)
    )
    runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(sim["base"], sim["this"], strict=True))
    return [
        Result(
            section=SECTION,
            name="dispatch on SQLite, base revision",
            value=fire_before,
            unit="firings/s",
            note=f"median of {repeat}; {dispatch_n} timers, one daemon",
        ),
        Result(
            section=SECTION,
            name="dispatch on SQLite, this checkout",
            value=fire_after,
            unit="firings/s",
            note=f"median of {repeat}; runs base/this: {fire_runs}",
        ),
        Result(
            section=SECTION,
            name="dispatch on SQLite: this checkout / base (firings/s)",
            value=fire_after / fire_before,
            unit="x",
            note=">= 1.0: no slower than the base revision",
        ),
        Result(
            section=SECTION,
            name="DK2020 simulation wall time, base revision",
            value=before,
            unit="s",
            note=f"median of {repeat}; `simulate dk2020 --seed 1`, interpreter start included",
        ),
        Result(
            section=SECTION,
            name="DK2020 simulation wall time, this checkout",
            value=after,
            unit="s",
            note=f"median of {repeat}; runs base/this: {runs}",
        ),
        Result(
            section=SECTION,
            name="DK2020 simulation: this checkout / base (wall time)",
            value=after / before,
            unit="x",
            note="<= 1.0: no slower than the base revision",
        ),
        Result(
            section=SECTION,
            name="SMTP delivery, base revision",
            value=mail_before,
            unit="mails/s",
            note=f"best of 2, {mail_n} mails, reused connection per batch",
        ),
        Result(
            section=SECTION,
            name="SMTP delivery, this checkout",
            value=mail_after,
            unit="mails/s",
            note=f"best of 2, {mail_n} mails, reused connection per batch",
        ),
        Result(
            section=SECTION,
            name="SMTP delivery: this checkout / base (mails/s)",
            value=mail_after / mail_before,
            unit="x",
            note=">= 1.0: no slower than the base revision",
        ),
    ]
