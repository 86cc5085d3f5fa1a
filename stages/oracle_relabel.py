"""Stage oracle_relabel@r: the oracle answers the query → data/rounds/<r>/labels.parquet and
data/rounds/<r>/answers.parquet (every answer, with the label decided for its sample).

simulated: ``al.annotators`` simulated annotators answer each queried sample, each wrong with
probability ``al.annotator_noise`` (one exact answer, the true label, by default). human: the
answers file annotations/round_<r>.csv or Label Studio's export annotations/round_<r>.json
(read, never written); without it the stage stops and says what to do. Several answers for a
sample are aggregated by ``al.aggregate``; a tie keeps the current label (label_source 'tied')."""

from alr_core.active.consensus import RELABELLED, SKIPPED, TIED, decide, simulated_annotators
from alr_core.active.labels import apply_answers, apply_decisions, paper_protocol_answers, simulated_answers
from alr_core.active.rounds import current_round
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument, run_stage
from alr_core.common.errors import AlrError
from alr_core.common.params import load_params
from alr_core.common.seeding import rng_for
from alr_core.common.text import counted
from alr_core.data.prepare import class_names as class_names_of
from alr_core.human.annotation import Answers, find_answers, read_answers
from alr_core.report.stopped import report_before_round


def main() -> None:
    name = round_argument(__doc__)
    params = load_params(paths.PARAMS)
    rnd = current_round(params, name)
    labels = artifacts.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    query = artifacts.read_parquet(rnd.out_dir / paths.QUERY)
    samples = artifacts.read_parquet(paths.PREPARED_SAMPLES)
    class_names = class_names_of(samples)
    if params.al.paper_protocol and rnd.number == 1:
        labels = apply_answers(labels, paper_protocol_answers(labels), rnd.number, "paper_protocol")
    answers_file = find_answers(rnd.number) if rnd.oracle == "human" else None
    if rnd.oracle == "human" and query.empty:  # the round's share of the budget is 0: nobody to ask
        answers, source = Answers.of({}).table, "expert"
    elif rnd.oracle == "human":
        page = rnd.out_dir / paths.ANNOTATION_PAGE
        read = read_answers(answers_file, query, labels["sample_id"], class_names, params.al.allow_partial, page,
                            rnd.number, params.al.annotators, params.seed,
                            dict(zip(samples["sample_id"], samples["split"])))  # fmt: skip
        if read.note:
            print(read.note)
        answers, source = read.table, "expert"
    else:
        rng = rng_for(params.seed, f"simulated annotators round {rnd.number}")
        answers = simulated_annotators(simulated_answers(labels, query["sample_id"]), len(class_names),
                                       params.al.annotators, params.al.annotator_noise, rng)  # fmt: skip
        source = "oracle"
    try:
        decisions = decide(answers, query, len(class_names), params.al.aggregate)
    except AlrError as exc:  # a rule over the round's whole answers, such as cleanlab's two annotators
        raise AlrError(f"round {rnd.number}, {answers_file if rnd.oracle == 'human' else 'simulated answers'}: "
                       f"{exc}") from None
    updated = apply_decisions(labels, decisions, rnd.number, source)
    artifacts.write_parquet(rnd.out_dir / paths.ANSWERS, answers.merge(decisions, on="sample_id"))
    artifacts.write_parquet(rnd.out_dir / paths.WORKING_LABELS, updated)
    changed = int((updated["label"] != labels["label"]).sum())
    counts = decisions["outcome"].value_counts()
    print(f"round {rnd.number}: {counted(len(answers), f'{source} answer')} for {counted(len(decisions), 'sample')} ("
          f"{counts.get(RELABELLED, 0)} relabelled, {counts.get(TIED, 0)} tied, {counts.get(SKIPPED, 0)} skipped), "
          f"{counted(changed, 'label')} changed")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, on_error=report_before_round)
