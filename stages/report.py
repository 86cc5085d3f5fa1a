"""Stage report: all rounds → metrics/report.json, plots/rounds.csv and PNG figures."""

from alr_core.common import paths
from alr_core.common.cli import run_stage
from alr_core.common.params import load_params
from alr_core.report.outputs import report_status, write_report
from alr_core.report.summary import table_text


def main() -> None:
    params = load_params(paths.PARAMS)
    print(table_text(write_report(report_status(len(params.rounds)))))


if __name__ == "__main__":
    run_stage(main)
