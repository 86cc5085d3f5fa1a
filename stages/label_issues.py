"""Stage label_issues: the pretrain embeddings and the train split's given labels → every train
sample ranked by how likely its given label is wrong, before any expert round.

Outputs: data/label_issues/label_issues.csv (one row per train sample, most likely wrong first:
given and suggested label, issue score, the rules that flagged it, its nearest neighbours),
data/label_issues/gallery.html (the top of the list as an offline page: each image beside its
neighbours in feature space), plots/embedding_map.png (a t-SNE map of the embeddings by given
label, the flagged samples ringed) and metrics/label_issues.json (flag counts; on the validation split,
whose labels alr takes as right, how often the rules flag them and how often the suggested label is
right; with simulated noise, each rule's precision and recall and the ranking's AUROC).
"""

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.errors import AlrError
from alr_core.common.params import load_params
from alr_core.common.text import counted
from alr_core.data.datasets import load_pipeline_data
from alr_core.data.identical import conflicting_copies
from alr_core.report.embedding_map import embedding_map_figure
from alr_core.report.flag_notes import validation_notes
from alr_core.report.label_issues import gallery_html, label_issue_metrics, label_issue_table


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    for path, stage in ((paths.PREPARED_SAMPLES, "prepare"), (paths.PRETRAIN_EMBEDDINGS, "pretrain"),
                        (paths.NOISY_LABELS, "inject_noise")):  # fmt: skip
        if not path.is_file():
            raise AlrError(f"{path}: not found; run the {stage} stage first (dvc repro {stage})")
    from alr_core.lnl.feature_rules import feature_flags, probe_balanced_accuracy, validation_false_alarm_rates

    data = load_pipeline_data(paths.PREPARED_IMAGES, paths.PREPARED_SAMPLES, artifacts.read_parquet(paths.NOISY_LABELS),
                              embeddings_path=paths.PRETRAIN_EMBEDDINGS)  # fmt: skip
    train, val, num_classes, lnl = data.train, data.val, len(data.class_names), params.lnl
    # the rules of lnl.selection knn_vote and cleanlab_kfold, with the same k and folds: a
    # flagged sample is one that rule leaves out of C
    probs, neighbours, flags = feature_flags(train.embeddings, train.labels, num_classes, lnl.knn_k, lnl.cv_folds)
    # what the same rules make of the validation labels, which alr takes as right: their false alarms
    false_alarm_rates = validation_false_alarm_rates(train.embeddings, train.labels, val.embeddings, val.labels,
                                                     num_classes, lnl.knn_k, lnl.cv_folds)  # fmt: skip
    # and one from the pixels alone: copies of one image filed under different labels
    flags["identical_copy"] = conflicting_copies(train.images, train.labels)
    suggestion_accuracy = probe_balanced_accuracy(train.embeddings, train.labels, val.embeddings, val.labels,
                                                  num_classes)  # fmt: skip
    table = label_issue_table(train.sample_ids, train.labels, data.class_names, probs, neighbours, flags,
                              params.label_issues.neighbours_shown, train.truth)  # fmt: skip
    metrics = label_issue_metrics(table, data.class_names, list(flags), suggestion_accuracy, len(val.labels),
                                  false_alarm_rates)  # fmt: skip
    note = validation_notes(metrics)
    page = gallery_html(table, train.sample_ids, train.images, neighbours, params.label_issues.gallery_size,
                        params.label_issues.neighbours_shown, paths.LABEL_ISSUES_CSV.name, note)  # fmt: skip
    metrics["num_in_gallery"] = min(params.label_issues.gallery_size, len(table))
    figure, metrics["num_in_map"] = embedding_map_figure(train.embeddings, train.sample_ids, train.labels,
                                                         data.class_names, table, params.label_issues.map_size)
    artifacts.write_csv(paths.LABEL_ISSUES_CSV, table)
    artifacts.write_text(paths.LABEL_ISSUES_GALLERY, page)
    artifacts.write_figure(paths.EMBEDDING_MAP_FIGURE, figure)
    artifacts.write_json(paths.LABEL_ISSUES_METRICS, metrics)
    by_rule = ", ".join(f"{rule} {metrics['flagged'][rule]}" for rule in flags)
    drawn = metrics["num_in_map"]
    mapped = f"{drawn} on a map of the embeddings" if drawn else "no map of the embeddings (the figure says why)"
    print(f"label issues: {metrics['flagged']['any']} of {counted(len(table), 'train sample')} flagged ({by_rule}); "
          f"ranked in {paths.LABEL_ISSUES_CSV}, the first {metrics['num_in_gallery']} "
          f"in {paths.LABEL_ISSUES_GALLERY}, {mapped} in {paths.EMBEDDING_MAP_FIGURE}")  # fmt: skip
    if note:
        print(f"label issues: {note} (docs/label_issues.md)")


if __name__ == "__main__":
    run_stage(main)
