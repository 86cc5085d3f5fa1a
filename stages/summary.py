"""summary: phase 1 and each finished round in one short table, and where the pipeline stands
(finished, waiting for expert answers, or no results yet). Not a pipeline stage: it only
reads metrics/*.json and imports no torch.

    python -m stages.summary
"""

from alr_core.common.cli import no_arguments, run_stage
from alr_core.report.overview import results_overview


def main() -> None:
    no_arguments(__doc__)
    print(results_overview())


if __name__ == "__main__":
    run_stage(main)
