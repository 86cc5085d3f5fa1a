"""Stage query@r: the round's budget of best-scored samples, each with an opaque item id →
data/rounds/<r>/query.parquet, and the annotation package: the self-contained annotate.html
experts answer, labelstudio_tasks.json with labelstudio_config.xml for teams that label in Label
Studio (both show item ids only), images/<item_id>.png (when al.image_url_prefix makes the tasks
reference files; else images/README.txt says the images are embedded), and annotate.csv, the
data team's item id → sample id mapping."""

from alr_core.active.labels import in_pool, queried_first, select_query
from alr_core.active.rounds import current_round
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument, run_stage
from alr_core.common.params import load_params
from alr_core.common.text import counted
from alr_core.data.prepare import class_names as class_names_of
from alr_core.human.annotation import (answers_path, item_ids, item_images, labelstudio_export_path, package_table,
                                       page_items, team_hint)  # fmt: skip
from alr_core.human.labelstudio import labeling_config, tasks
from alr_core.human.page import render_page


def main() -> None:
    name = round_argument(__doc__)
    params = load_params(paths.PARAMS)
    rnd = current_round(params, name)
    scores = artifacts.read_parquet(rnd.out_dir / paths.SCORES)
    labels = artifacts.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    samples = artifacts.read_parquet(paths.PREPARED_SAMPLES)
    class_names = class_names_of(samples)
    pool_ids = labels.loc[in_pool(labels, params.al.pool, params.al.paper_protocol), "sample_id"]
    query = select_query(scores[scores["sample_id"].isin(pool_ids)], rnd.budget, queried_first(labels, params.al.pool))
    current = labels.set_index("sample_id")["label"]
    query.insert(3, "current_label", current.reindex(query["sample_id"]).to_numpy())
    query.insert(1, "item_id", item_ids(query["sample_id"], rnd.number, params.seed))
    query = query.rename(columns={"prediction": "predicted_label"})

    package = package_table(query, samples, class_names)
    # experts see the images in item-id order, not by score: ties in score are broken by sample
    # id, which for an image folder would group the tied images by their (true) class folder
    shown = package.sort_values("item_id", kind="stable")
    images = artifacts.load_npy(paths.PREPARED_IMAGES, mmap_mode="r")
    items = page_items(shown, images)
    page = render_page(items, class_names, rnd.number, answers_path(rnd.number).name, params.al.annotators)
    prefix, images_dir = params.al.image_url_prefix, rnd.out_dir / paths.ITEM_IMAGES
    label_studio = tasks(shown, items, class_names, rnd.number, prefix, images_dir)
    artifacts.write_directory(images_dir, item_images(shown, images, prefix))
    artifacts.write_parquet(rnd.out_dir / paths.QUERY, query)
    artifacts.write_csv(rnd.out_dir / paths.ANNOTATION_CSV, package.drop(columns="image_row"))
    artifacts.write_text(rnd.out_dir / paths.ANNOTATION_PAGE, page)
    artifacts.write_json(rnd.out_dir / paths.LABELSTUDIO_TASKS, label_studio)
    artifacts.write_text(rnd.out_dir / paths.LABELSTUDIO_CONFIG, labeling_config(class_names))
    print(f"round {rnd.number}: queried {len(query)} of {counted(len(scores), 'pool sample')}")
    if rnd.oracle == "human" and query.empty:
        print(f"round {rnd.number}: its share of the budget is 0, so no expert answers are needed")
    elif rnd.oracle == "human":
        print(f"round {rnd.number}: experts answer in {rnd.out_dir / paths.ANNOTATION_PAGE} and save "
              f"{answers_path(rnd.number)}, or label {rnd.out_dir / paths.LABELSTUDIO_TASKS} in Label Studio "
              f"and save its JSON export as {labelstudio_export_path(rnd.number)}{team_hint(params.al.annotators)}")


if __name__ == "__main__":
    run_stage(main)
