"""Phase-2 evidence: final test balanced accuracy and label accuracy per configuration, over
seeds. Suites: ``strategies`` (RetinaMNIST: each active-learning strategy, with phase 1 =
coteaching_vog and = ce) and ``multi_annotator`` (one noisy simulated annotator per queried
sample against three with a majority vote, at the same budget of answers).

Runs the real pipeline: a clone of this repository's HEAD in --workdir, then one
`dvc exp run -S ...` per configuration and seed (DVC's run cache restores a phase 1 already
computed for the same seed and method instead of training it again), then reads every
experiment from `dvc exp show --json` and aggregates them as `python -m stages.compare` does
(grouped by every parameter but the seed, mean ± sample std).

    python -m bench.phase2_evidence --seeds 0 1 2 --out bench/phase2_evidence.md
    python -m bench.phase2_evidence --suite multi_annotator --source digits --budget 100 \
        --seeds 0 1 --out bench/multi_annotator.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from alr_core.report.compare import Experiment, markdown_report, read_experiments

REPO = Path(__file__).resolve().parents[1]
RETINA = REPO.parent / "shared" / "data" / "retinamnist" / "retinamnist.npz"
STRATEGIES = ["random", "entropy", "margin", "label_disagreement"]


def strategy_configurations() -> list[dict]:
    """Phase 1 with LNL queries outside its clean guess C; plain CE trusts every label (C is
    everything), so active learning without LNL queries from all samples (al.pool: all)."""
    configs = [{"lnl.method": method, "al.pool": "all" if method == "ce" else "unselected",
                "al.strategy": strategy, "al.paper_protocol": False}
               for method in ("coteaching_vog", "ce") for strategy in STRATEGIES]  # fmt: skip
    configs.append({"lnl.method": "coteaching_vog", "al.pool": "unselected", "al.strategy": "entropy",
                    "al.paper_protocol": True})
    return configs


def multi_annotator_configurations() -> list[dict]:
    """Asking once against asking three times at the same budget of answers (so a third of the
    samples), each simulated answer wrong with probability 0.2."""
    return [{"al.annotators": annotators, "al.annotator_noise": 0.2, "al.aggregate": "majority"}
            for annotators in (1, 3)]  # fmt: skip


SUITES = {"strategies": strategy_configurations, "multi_annotator": multi_annotator_configurations}
SOURCES = {"retinamnist": "RetinaMNIST, symmetric noise 0.6", "digits": "digits, default data and noise params"}


def run(args: list[str], cwd: Path) -> str:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def set_up(workdir: Path, budget: int, source: str) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    run(["git", "clone", "--quiet", str(REPO), str(workdir)], REPO)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    if source == "retinamnist":
        params["data"] |= {"source": "medmnist", "path": str(RETINA)}
        params["noise"] |= {"type": "symmetric", "rate": 0.6}
        params["train"]["augment"]["hflip"] = True
    params["budget"] = budget
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "--quiet", "-am", f"phase-2 evidence: {SOURCES[source]}"], workdir)


def experiments(workdir: Path) -> list[Experiment]:
    """The workdir's experiments as `python -m stages.compare` reads them."""
    return read_experiments(json.loads(run([sys.executable, "-m", "dvc", "exp", "show", "--json"], workdir)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="strategies")
    parser.add_argument("--source", choices=sorted(SOURCES), default="retinamnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=108, help="10%% of RetinaMNIST's 1,080 train images")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/alr-phase2-evidence"))
    parser.add_argument("--out", type=Path, default=Path("bench/phase2_evidence.md"))
    parser.add_argument("--resume", action="store_true", help="keep --workdir and its finished experiments")
    args = parser.parse_args()
    if args.source == "retinamnist" and not RETINA.exists():
        sys.exit(f"{RETINA} not found: this evidence needs ../shared/data")
    if not args.resume:
        set_up(args.workdir, args.budget, args.source)
    configurations = SUITES[args.suite]
    keys = ["seed", *configurations()[0]]
    done = {tuple(e.params.get(k) for k in keys) for e in experiments(args.workdir) if e.finished}
    for seed in args.seeds:
        for config in configurations():
            if (seed, *(config[k] for k in keys[1:])) in done:
                continue
            overrides = [f"{key}={str(value).lower()}" for key, value in (("seed", seed), *config.items())]
            print("dvc exp run", *overrides, flush=True)
            run([sys.executable, "-m", "dvc", "exp", "run", *[a for o in overrides for a in ("-S", o)]], args.workdir)
    command = shlex.join(["python", "-m", "bench.phase2_evidence", *sys.argv[1:]])
    args.out.write_text(
        f"Phase-2 evidence ({args.suite}): {SOURCES[args.source]}, budget {args.budget} over 5 rounds, seeds "
        f"{args.seeds}, default params otherwise. Produced by `{command}`; aggregated like "
        "`python -m stages.compare` (mean ± sample std).\n\n" + markdown_report(experiments(args.workdir))
    )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
