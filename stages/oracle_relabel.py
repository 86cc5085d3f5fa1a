"""Stage oracle_relabel@r: the oracle answers the query → data/rounds/<r>/labels.parquet.

simulated: the true labels answer. human: the expert's answers file annotations/round_<r>.csv
(read, never written); without it the stage stops and says what to do."""

import pandas as pd

from alr_core.active.labels import apply_answers, mark_skipped, paper_protocol_answers, simulated_answers
from alr_core.active.rounds import current_round
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument, run_stage
from alr_core.common.params import load_params
from alr_core.data.prepare import class_names as class_names_of
from alr_core.human.annotation import answers_path, read_answers


def main() -> None:
    params = load_params(paths.PARAMS)
    rnd = current_round(params, round_argument(__doc__))
    labels = pd.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    query = pd.read_parquet(rnd.out_dir / paths.QUERY)
    if params.al.paper_protocol and rnd.number == 1:
        labels = apply_answers(labels, paper_protocol_answers(labels), rnd.number, "paper_protocol")
    if rnd.oracle == "human":
        class_names = class_names_of(pd.read_parquet(paths.PREPARED_SAMPLES))
        answers = read_answers(answers_path(rnd.number), query, labels["sample_id"], class_names,
                               params.al.allow_partial, rnd.out_dir / paths.ANNOTATION_PAGE)  # fmt: skip
        updated = mark_skipped(apply_answers(labels, answers.labels, rnd.number, "expert"), answers.skipped,
                               rnd.number)  # fmt: skip
        answered = f"{len(answers.labels)} expert answers, {len(answers.skipped)} skipped"
    else:
        updated = apply_answers(labels, simulated_answers(labels, query["sample_id"]), rnd.number, "oracle")
        answered = f"{len(query)} simulated answers"
    artifacts.write_parquet(rnd.out_dir / paths.WORKING_LABELS, updated)
    changed = int((updated["label"] != labels["label"]).sum())
    print(f"round {rnd.number}: {answered}, {changed} labels changed")


if __name__ == "__main__":
    run_stage(main)
