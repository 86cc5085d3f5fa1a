"""compare: aggregate a sweep of experiments (not a pipeline stage; run it after a sweep).

    python -m stages.compare                      # experiments of HEAD, via dvc exp show --json
    python -m stages.compare --all-commits        # experiments of every commit
    python -m stages.compare --exp-show exps.json # a saved `dvc exp show --json` output
    python -m stages.compare --baseline al.strategy=random   # also paired with random, seed by seed

Groups the experiments by every parameter except the seeds (seed, data.split_seed), and by the
commit they ran on, and writes metrics/compare.md (printed too), metrics/compare.csv (one row
per group, mean and std columns) and plots/compare.png (mean learning curve and ±1 std band
per group). Queued, running and failed experiments are listed, not aggregated, and so are
repeats (an older run of the same parameters and seeds on the same commit). With --baseline
KEY=VALUE ..., each other group is paired with the group that differs from it only in those
keys, replicate by replicate (same seed and split seed): the mean difference and its 95 %
t-interval, in the Markdown and as <metric>_diff, _diff_low, _diff_high, _pairs columns.
"""

import json
import subprocess
import sys
from pathlib import Path

from alr_core.common import artifacts
from alr_core.common.cli import run_stage, stage_parser
from alr_core.common.errors import AlrError
from alr_core.report.compare import (curves_figure, markdown_report, parse_baseline, read_experiments,
                                     summary_table)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--exp-show", type=Path, help="a saved `dvc exp show --json` output (default: run it)")
    parser.add_argument("--all-commits", action="store_true", help="experiments of every commit, not only HEAD")
    parser.add_argument("--markdown", type=Path, default=Path("metrics/compare.md"))
    parser.add_argument("--csv", type=Path, default=Path("metrics/compare.csv"))
    parser.add_argument("--figure", type=Path, default=Path("plots/compare.png"))
    parser.add_argument("--baseline", nargs="+", metavar="KEY=VALUE",
                        help="the parameters of the baseline, e.g. al.strategy=random (several: same group)")
    args = parser.parse_args()
    baseline = parse_baseline(args.baseline) if args.baseline else None

    source = str(args.exp_show) if args.exp_show else "dvc exp show --json"
    experiments = read_experiments(_load(args.exp_show) if args.exp_show else _exp_show(args.all_commits), source)
    if not experiments:
        earlier = "" if args.all_commits or args.exp_show else " (on this commit: --all-commits reads earlier ones too)"
        raise AlrError(f"{source}: no experiments{earlier}; run a sweep first, e.g. "
                       "dvc exp run --queue -S seed=0,1,2 && dvc queue start -j 2")  # fmt: skip
    report = markdown_report(experiments, baseline)
    table = summary_table(experiments, baseline)
    figure = curves_figure(experiments) if len(table) else None
    artifacts.write_text(args.markdown, report)
    artifacts.write_csv(args.csv, table)
    if figure is not None:
        import matplotlib.pyplot as plt  # after curves_figure, which chooses the non-interactive backend

        artifacts.write_figure(args.figure, figure)
        plt.close(figure)
    elif args.figure.exists():  # an earlier sweep's curves would stand beside a table of none
        args.figure.unlink()
    print(report)


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlrError(f"{path}: cannot read as JSON ({exc})") from None


def _exp_show(all_commits: bool):
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AlrError(f"`dvc exp show --json` failed (exit {result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


if __name__ == "__main__":
    run_stage(main)
