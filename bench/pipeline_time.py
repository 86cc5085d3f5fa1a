"""End-to-end time of the default pipeline from a fresh clone, per stage, and of a no-op re-run.

    python -m bench.pipeline_time

Clones this repository's HEAD (committed files only, so uncommitted changes are not measured;
no DVC cache) into a temporary folder and runs ``dvc repro`` there twice, with this
interpreter's environment first on PATH. A stage's time runs from DVC's "Running stage
'<name>':" line to the next such line, or to the end of the command for the last stage, so it
includes DVC's own work for that stage (hashing and caching its outputs, the lock file).
The second ``dvc repro`` finds everything up to date: its time is DVC's checking overhead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def timed_repro(root: Path, env: dict) -> dict:
    """Run ``dvc repro`` in ``root``, timestamping its output lines.

    Returns ``seconds`` (the whole command) and ``stages``: [(name, seconds)] in run order."""
    start = time.perf_counter()
    starts = []
    output = []
    with subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as process:  # fmt: skip
        for line in process.stdout:
            output.append(line)
            match = STAGE_LINE.search(line)
            if match:
                starts.append((match.group(1), time.perf_counter()))
    end = time.perf_counter()
    if process.returncode != 0:
        raise RuntimeError(f"dvc repro failed in {root} (exit {process.returncode}):\n{''.join(output[-40:])}")
    ends = [t for _, t in starts[1:]] + [end]
    return {"seconds": end - start, "stages": [(name, stop - t) for (name, t), stop in zip(starts, ends)]}


def measure(repo: Path = REPO, log=print) -> dict:
    """Clone ``repo`` at HEAD, then a first (everything runs) and a second (no-op) ``dvc repro``."""
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo, text=True).strip()
    dirty = bool(subprocess.check_output(["git", "status", "--porcelain"], cwd=repo, text=True).strip())
    # the venv's python and dvc first; no PYTHONPATH, so the stages import the clone's own code
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="alr-bench-clone-") as tmp:
        clone = Path(tmp) / "alr"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", "--no-local", str(repo), str(clone)], check=True)
        clone_seconds = time.perf_counter() - start
        log(f"pipeline: dvc repro in a fresh clone of {commit[:10]} ...")
        fresh = timed_repro(clone, env)
        log(f"  {fresh['seconds']:.1f} s; again (no-op) ...")
        noop = timed_repro(clone, env)
    return {"commit": commit, "dirty": dirty, "clone_seconds": clone_seconds, "fresh": fresh, "noop": noop}


def markdown(result: dict) -> list[str]:
    fresh = result["fresh"]
    lines = [
        f"Commit {result['commit'][:10]} (HEAD"
        + (", the working tree had uncommitted changes that this does not measure" if result["dirty"] else "")
        + f"), default params.yaml. `git clone`: {result['clone_seconds']:.1f} s. "
        f"`dvc repro` from the fresh clone: **{fresh['seconds']:.1f} s** ({len(fresh['stages'])} stages). "
        f"Second `dvc repro` (nothing to do): **{result['noop']['seconds']:.1f} s** "
        f"({len(result['noop']['stages'])} stages ran).",
        "",
        "| stage | seconds | share |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {seconds:.1f} | {seconds / fresh['seconds']:.1%} |" for name, seconds in fresh["stages"]]
    startup = fresh["seconds"] - sum(seconds for _, seconds in fresh["stages"])
    lines.append(f"| (DVC start-up before the first stage) | {startup:.1f} | {startup / fresh['seconds']:.1%} |")
    return lines


def main() -> None:
    print("\n".join(markdown(measure())))


if __name__ == "__main__":
    main()
