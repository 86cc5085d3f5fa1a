"""Stage report: all rounds → metrics/report.json, plots/rounds.csv and PNG figures."""

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.params import load_params
from alr_core.report.outputs import report_status, write_report
from alr_core.report.overview import unscored_classes_text
from alr_core.report.summary import table_text


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    print(table_text(write_report(report_status(len(params.rounds)))))
    unscored = unscored_classes_text(artifacts.read_json(paths.DATA_METRICS))
    if unscored:
        print(unscored)


if __name__ == "__main__":
    run_stage(main)
