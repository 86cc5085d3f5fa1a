"""End-to-end time of the default pipeline from a fresh clone, per stage, and of a no-op re-run.

    python -m bench.pipeline_time
    python -m bench.pipeline_time --baseline 47d4466 --repeats 2   # paired: baseline, HEAD, baseline, HEAD

Clones this repository's HEAD (committed files only, so uncommitted changes are not measured;
no DVC cache) into a temporary folder and runs ``dvc repro`` there twice, with this
interpreter's environment first on PATH. A stage's time runs from DVC's "Running stage
'<name>':" line to the next such line, or to the end of the command for the last stage, so it
includes DVC's own work for that stage (hashing and caching its outputs, the lock file).
The second ``dvc repro`` finds everything up to date: its time is DVC's checking overhead.

With ``--baseline`` it alternates fresh clones of the baseline revision and of HEAD, so that
both see the same machine (its speed drifts by 10 % and more between hours here), and tables
the time per stage (rounds summed) of each.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

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


def commit_of(revision: str, repo: Path = REPO) -> Optional[str]:
    """The full hash of the commit ``revision`` names in ``repo``; None if it names none."""
    found = subprocess.run(["git", "rev-parse", "--quiet", "--verify", f"{revision}^{{commit}}"], cwd=repo,
                           capture_output=True, text=True)  # fmt: skip
    return found.stdout.strip() if found.returncode == 0 else None


def measure(repo: Path = REPO, log=print, revision: str = "HEAD") -> dict:
    """Clone ``repo`` at ``revision``, then a first (everything runs) and a second (no-op) ``dvc repro``."""
    commit = commit_of(revision, repo)
    if commit is None:
        raise ValueError(f"{revision!r} is not a commit of {repo}")
    dirty = bool(subprocess.check_output(["git", "status", "--porcelain"], cwd=repo, text=True).strip())
    # the venv's python and dvc first; no PYTHONPATH, so the stages import the clone's own code
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="alr-bench-clone-") as tmp:
        clone = Path(tmp) / "alr"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", "--no-local", str(repo), str(clone)], check=True)
        subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", commit], cwd=clone, check=True)
        clone_seconds = time.perf_counter() - start
        log(f"pipeline: dvc repro in a fresh clone of {commit[:10]} ...")
        fresh = timed_repro(clone, env)
        log(f"  {fresh['seconds']:.1f} s; again (no-op) ...")
        noop = timed_repro(clone, env)
    return {"commit": commit, "dirty": dirty, "clone_seconds": clone_seconds, "fresh": fresh, "noop": noop}


def stage_groups(stages: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per stage, the rounds of a per-round stage (``retrain@1``, ``retrain@2``, ...) summed
    under its name, in first-run order."""
    groups: dict[str, float] = {}
    for name, seconds in stages:
        group = name.split("@")[0]
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def paired_markdown(pairs: list[tuple[dict, dict]]) -> list[str]:
    """The (baseline, candidate) results of :func:`measure`, one pair per repeat, side by side:
    the mean seconds per stage group of each and the candidate's difference in every repeat."""
    base, head = pairs[0][0]["commit"][:10], pairs[0][1]["commit"][:10]
    rows = [("`dvc repro` (all stages)", [(b["fresh"]["seconds"], h["fresh"]["seconds"]) for b, h in pairs])]
    grouped = [(stage_groups(b["fresh"]["stages"]), stage_groups(h["fresh"]["stages"])) for b, h in pairs]
    groups = {}  # every stage any run ran, in first-run order
    for pair in grouped:
        for seconds in pair:
            groups |= seconds
    for group in groups:
        rows.append((group, [(b.get(group, 0.0), h.get(group, 0.0)) for b, h in grouped]))
    rows.append(("no-op `dvc repro`", [(b["noop"]["seconds"], h["noop"]["seconds"]) for b, h in pairs]))
    lines = [
        f"Baseline {base} against {head}, {len(pairs)} repeat(s), each a fresh clone, run alternately "
        "on this machine; seconds, rounds summed per stage.",
        "",
        f"| stage | {base} | {head} | difference per repeat |",
        "|---|---|---|---|",
    ]
    for name, times in rows:
        mean_base = sum(b for b, _ in times) / len(times)
        mean_head = sum(h for _, h in times) / len(times)
        differences = ", ".join(f"{h - b:+.1f}" for b, h in times)
        lines.append(f"| {name} | {mean_base:.1f} | {mean_head:.1f} | {differences} |")
    return lines


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a revision to compare HEAD with, run alternately with it")
    parser.add_argument("--repeats", type=int, default=1, help="with --baseline: pairs of runs (default 1)")
    args = parser.parse_args()
    if args.baseline is None:
        print("\n".join(markdown(measure())))
        return
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if commit_of(args.baseline) is None:
        parser.error(f"--baseline {args.baseline!r} is not a commit of {REPO}; give a hash, tag or branch")
    pairs = [(measure(revision=args.baseline), measure()) for _ in range(args.repeats)]
    print("\n".join(paired_markdown(pairs)))


if __name__ == "__main__":
    main()
