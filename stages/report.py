"""Stage report: all rounds → metrics/report.json, plots/rounds.csv and PNG figures."""

import matplotlib.pyplot as plt

from alr_core.common import artifacts, paths
from alr_core.common.cli import run_stage
from alr_core.common.params import load_params
from alr_core.report.summary import class_recall_figure, confusion_figure, learning_curve_figure, rounds_table, summary


def main() -> None:
    params = load_params(paths.PARAMS)
    lnl_metrics = artifacts.read_json(paths.LNL_METRICS)
    round_metrics = [artifacts.read_json(paths.round_metrics(name)) for name in params.rounds]
    table = rounds_table(lnl_metrics, round_metrics)
    artifacts.write_csv(paths.ROUNDS_PLOT, table)
    artifacts.write_json(paths.REPORT_METRICS, summary(table, lnl_metrics, round_metrics))

    final = round_metrics[-1]
    class_names = artifacts.read_json(paths.DATA_METRICS)["class_names"]
    figures = {
        paths.LEARNING_CURVE_FIGURE: learning_curve_figure(table),
        paths.PHASE1_RECALL_FIGURE: class_recall_figure(lnl_metrics),
        paths.CONFUSION_FIGURE: confusion_figure((final["test"] or {}).get("confusion_matrix"), class_names,
                                                 f"Final model (round {final['round']}), test split"),
    }  # fmt: skip
    for path, figure in figures.items():
        artifacts.write_figure(path, figure)
        plt.close(figure)
    print(table.to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
