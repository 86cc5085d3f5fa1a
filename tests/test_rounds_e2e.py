"""End to end, phase 2: the whole DVC pipeline with two active-learning rounds on tiny params.

One project copy is shared by the module (every `dvc repro` starts python + torch per stage):
the fixture runs the full pipeline once and commits the result; each test then writes the
params it needs (so the tests do not depend on each other's order) and re-runs only what
that change requires, which is itself checked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from builders import deep_merge, ran_stages, rounds_param, write_params

from alr_core.common import paths
from alr_core.common.params import default_params

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

BUDGET = 6  # two rounds: 3 + 3
TINY = {
    "seed": 0,
    "budget": BUDGET,
    "data": {"source": "digits", "path": None, "image_size": 8, "channels": None, "class_names": None,
             "imbalance_ratio": 10, "val_per_class": 5, "test_per_class": 5},
    "noise": {"type": "symmetric", "rate": 0.4, "keep_clean_classes": []},
    "model": {"arch": "auto"},
    "train": {"device": "cpu", "batch_size": 32},
    "pretrain": {"epochs": 1},
    # check, not pick: the pool below is the samples outside C, which CE's C (every sample) leaves empty
    "lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 3, "num_gradual": 1, "vog_window": 2,
            "safety_net": "check"},
    "al": {"strategy": "entropy", "pool": "unselected", "oracle": "simulated", "paper_protocol": False,
           "train_on": "selected", "epochs": 2},
}  # fmt: skip
NUM_TRAIN = 669  # see test_e2e.py
PHASE1 = ["prepare", "pretrain", "inject_noise", "label_issues", "lnl_train"]
ROUND_STAGES = ["score_samples", "query", "oracle_relabel", "retrain"]


def stages_of(rounds: int) -> list[str]:
    return [f"{stage}@{r}" for r in range(1, rounds + 1) for stage in ROUND_STAGES] + ["report"]


def set_params(project, overrides: dict | None = None, rounds: int = 2) -> None:
    """params.yaml = the default params, TINY, ``overrides``; exactly ``rounds`` rounds."""
    raw = deep_merge(deep_merge(default_params(), TINY), overrides or {})
    raw["rounds"] = rounds_param(rounds)
    write_params(project.root, raw=raw)


def read_json(project, path):
    return json.loads((project.root / path).read_text())


def labels_of(project, folder) -> pd.DataFrame:
    return pd.read_parquet(project.root / folder / paths.WORKING_LABELS)


@pytest.fixture(scope="module")
def pipeline(module_project_copy):
    """The full pipeline on TINY params, committed; returns the project and `dvc repro`'s output
    (with ``git_status``, the porcelain status right after the run)."""
    project = module_project_copy
    set_params(project)
    project.git("commit", "-q", "-am", "tiny params, two rounds")
    result = project.dvc("repro", timeout=900)
    result.git_status = project.git("status", "--porcelain", "--untracked-files=all").stdout
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "tiny run")
    return project, result


def back_to_head(project) -> None:
    """Workspace = the committed tiny run (params, lock, metrics, and the cached outputs)."""
    project.git("reset", "-q", "--hard")
    project.dvc("checkout", "--force")


# ----------------------------------------------------------------------------- the first run


def test_two_rounds_end_to_end(pipeline):
    project, result = pipeline
    root = project.root
    assert ran_stages(result.stdout) == PHASE1 + stages_of(2), result.stdout
    # a fresh clone's first run changes no tracked file: its results are new files of the user's
    changes = result.git_status.splitlines()
    assert changes and all(line.startswith("?? ") for line in changes), result.git_status
    new_files = {line[3:] for line in changes}
    assert "dvc.lock" in new_files and str(paths.REPORT_METRICS) in new_files
    assert all(name == "dvc.lock" or name.startswith(("metrics/", "plots/")) for name in new_files), new_files
    # nor does DVC warn about anything (an empty dependency file, an empty output folder)
    assert "WARNING:" not in result.stdout + result.stderr, result.stdout + result.stderr

    for r in (1, 2):
        for name in (paths.SCORES, paths.QUERY, paths.WORKING_LABELS, paths.MODEL):
            assert (root / paths.round_dir(r) / name).is_file(), (r, name)
        assert (root / paths.round_metrics(r)).is_file()
    for path in (paths.REPORT_METRICS, paths.ROUNDS_PLOT, paths.LEARNING_CURVE_FIGURE,
                 paths.PHASE1_RECALL_FIGURE, paths.CONFUSION_FIGURE):  # fmt: skip
        assert (root / path).is_file(), path
    for path in (paths.LEARNING_CURVE_FIGURE, paths.PHASE1_RECALL_FIGURE, paths.CONFUSION_FIGURE):
        assert (root / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path

    net = read_json(project, paths.LNL_METRICS)["safety_net"]  # plain CE trained beside phase 1
    assert net["mode"] == "check" and net["used"] == "coteaching_vog"
    val_gap = net["ce_val_balanced_accuracy"] - net["method_val_balanced_accuracy"]
    assert net["ce_lead"]["diff"] == pytest.approx(val_gap)
    assert net["ce_is_better"] == (net["ce_val_balanced_accuracy"] > net["method_val_balanced_accuracy"])

    # ---- the working label tables: every row, in phase 1's order; only queried rows change
    round0 = labels_of(project, "data/lnl")
    assert len(round0) == NUM_TRAIN and (round0["label_source"] == "observed").all()
    pool_size = int((~round0["clean_guess"]).sum())
    previous = round0
    queried_so_far: list[str] = []
    for r in (1, 2):
        scores = pd.read_parquet(root / paths.round_dir(r) / paths.SCORES)
        query = pd.read_parquet(root / paths.round_dir(r) / paths.QUERY)
        labels = labels_of(project, paths.round_dir(r))
        # the pool: outside C, never re-labelled before
        assert len(scores) == pool_size - 3 * (r - 1)
        assert not set(scores["sample_id"]) & set(queried_so_far)
        assert not scores["sample_id"].isin(round0.loc[round0["clean_guess"], "sample_id"]).any()
        # the query: the 3 best entropy scores, ties by sample id
        assert query["rank"].tolist() == [1, 2, 3]
        best = scores.sort_values(["score", "sample_id"], ascending=[False, True]).head(3)
        assert query["sample_id"].tolist() == best["sample_id"].tolist()
        current = previous.set_index("sample_id")["label"]
        assert query["current_label"].tolist() == current[query["sample_id"]].tolist()
        # the label update
        assert labels["sample_id"].tolist() == round0["sample_id"].tolist()
        for column in ("observed_label", "true_label", "clean_guess"):
            assert labels[column].tolist() == round0[column].tolist()
        asked = labels["sample_id"].isin(query["sample_id"])
        assert (labels.loc[asked, "label"] == labels.loc[asked, "true_label"]).all()
        assert (labels.loc[asked, "label_source"] == "oracle").all()
        assert (labels.loc[asked, "relabel_round"] == r).all()
        pd.testing.assert_frame_equal(labels[~asked], previous[~asked])
        fixed = asked & (previous["label"] != previous["true_label"])
        predicted = labels["sample_id"].map(query.set_index("sample_id")["predicted_label"])
        fixed_predicted = int((fixed & (predicted == labels["true_label"])).sum())
        fixed_in_c = int((fixed & previous["clean_guess"]).sum())  # no sample is asked twice
        queried_so_far += query["sample_id"].tolist()
        previous = labels

        metrics = read_json(project, paths.round_metrics(r))
        assert metrics["round"] == r and metrics["strategy"] == "entropy"
        assert metrics["budget_round"] == 3 and metrics["budget_used"] == 3 * r
        assert metrics["paper_protocol"] is False and metrics["paper_protocol_labels"] == 0
        assert metrics["retrained"] is True
        assert metrics["train_size"] == int(round0["clean_guess"].sum()) + 3 * r
        assert set(metrics["test"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "confusion_matrix"}
        cleaning = metrics["cleaning"]
        truth = labels["true_label"]
        assert cleaning["label_accuracy"] == pytest.approx(float((labels["label"] == truth).mean()))
        assert cleaning["wrong_remaining"] == int((labels["label"] != truth).sum())
        assert sum(cleaning["queried_per_class"].values()) == 3
        assert cleaning["fixed_by_queries"] == int(fixed.sum())
        assert cleaning["fixed_already_predicted"] == fixed_predicted
        assert cleaning["fixed_in_trusted"] == fixed_in_c

    # ---- the report
    lnl = read_json(project, paths.LNL_METRICS)
    round_metrics = [read_json(project, paths.round_metrics(r)) for r in (1, 2)]
    table = pd.read_csv(root / paths.ROUNDS_PLOT)
    assert table["round"].tolist() == [0, 1, 2]
    assert table["budget_used"].tolist() == [0, 3, 6]
    assert pd.isna(table["model_kept"][0]) and table["model_kept"][1:].tolist() == [
        m["kept_previous"] for m in round_metrics]
    assert table["test_balanced_accuracy"].tolist() == pytest.approx(
        [lnl["test"]["balanced_accuracy"]] + [m["test"]["balanced_accuracy"] for m in round_metrics])
    assert table["label_accuracy"].tolist() == pytest.approx(
        [round_metrics[0]["cleaning"]["label_accuracy_before"]]
        + [m["cleaning"]["label_accuracy"] for m in round_metrics])
    assert table["label_accuracy"].iloc[0] == pytest.approx(float((round0["label"] == round0["true_label"]).mean()))
    report = read_json(project, paths.REPORT_METRICS)
    assert report["rounds"] == 2 and report["budget_used"] == BUDGET and report["strategy"] == "entropy"
    assert report["final_test_balanced_accuracy"] == pytest.approx(round_metrics[1]["test"]["balanced_accuracy"])
    ba = table["test_balanced_accuracy"].to_numpy()
    assert report["learning_curve_area"] == pytest.approx((ba[0] + 2 * ba[1] + ba[2]) / 4)

    # ---- nothing left to do
    again = project.dvc("repro")
    assert ran_stages(again.stdout) == [], again.stdout


def test_editing_the_network_code_invalidates_every_stage_that_runs_a_network(pipeline):
    project, _ = pipeline
    back_to_head(project)
    with (project.root / "alr_core" / "nn" / "models.py").open("a") as module:
        module.write("\n# an edit\n")
    status = json.loads(project.dvc("status", "--json").stdout)
    changed = set(status)
    assert {"lnl_train", "score_samples@1", "retrain@1", "score_samples@2", "retrain@2"} <= changed, status
    # stages that never load a network are not re-run for it
    assert not changed & {"prepare", "inject_noise", "query@1", "oracle_relabel@1", "report"}, status
    back_to_head(project)


def test_plots_show_renders(pipeline, tmp_path):
    project, _ = pipeline
    out = tmp_path / "plots"
    project.dvc("plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    assert "learning curve" in html
    assert "learning_curve.png" in html and "lnl_epochs.csv" in html
    # every plot dvc.yaml defines draws (plain CE has no network g: its columns are empty, not absent)
    shown = json.loads(project.dvc("plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert all(shown["data"][name] for name in ("phase 1 train loss per network",
                                                "phase 1 validation and kept-set precision per epoch"))


# ----------------------------------------------------------------------------- budget checks


def test_budget_larger_than_the_pool_fails_before_any_work(pipeline):
    project, _ = pipeline
    round0 = labels_of(project, "data/lnl")
    pool_size = int((~round0["clean_guess"]).sum())
    budget = NUM_TRAIN + 1
    set_params(project, {"budget": budget})
    result = project.dvc("repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ran_stages(result.stdout) == ["score_samples@1"], output
    # more than the train split: no other pool would hold it, so none is suggested
    assert f"budget: {budget} leaves {budget} samples to query from round 1 on" in output
    assert f"holds only {pool_size} samples; lower budget to at most {pool_size}\n" in output
    assert "Traceback" not in output
    assert not (project.root / paths.round_dir(1) / paths.SCORES).exists()


def test_budget_zero_keeps_the_phase1_model(pipeline):
    project, _ = pipeline
    set_params(project, {"budget": 0}, rounds=1)
    result = project.dvc("repro", timeout=600)
    assert ran_stages(result.stdout) == stages_of(1), result.stdout
    assert pd.read_parquet(project.root / paths.round_dir(1) / paths.QUERY).empty
    pd.testing.assert_frame_equal(labels_of(project, paths.round_dir(1)), labels_of(project, "data/lnl"))
    lnl = read_json(project, paths.LNL_METRICS)
    metrics = read_json(project, paths.round_metrics(1))
    assert metrics["budget_used"] == 0 and metrics["retrained"] is False
    for key in ("confusion_matrix", "accuracy", "balanced_accuracy", "macro_f1"):
        assert metrics["test"][key] == lnl["test"][key], key  # the same model, evaluated again
    report = read_json(project, paths.REPORT_METRICS)
    assert report["budget_used"] == 0 and report["rounds"] == 1
    assert report["final_test_balanced_accuracy"] == lnl["test"]["balanced_accuracy"]
    assert report["phase1_test_balanced_accuracy"] == lnl["test"]["balanced_accuracy"]
    assert report["learning_curve_area"] == lnl["test"]["balanced_accuracy"]


def test_paper_protocol_is_used_and_recorded(pipeline):
    project, _ = pipeline
    set_params(project, {"budget": 3, "al": {"paper_protocol": True}}, rounds=1)
    result = project.dvc("repro", timeout=600)
    assert ran_stages(result.stdout) == stages_of(1), result.stdout
    round0 = labels_of(project, "data/lnl")
    labels = labels_of(project, paths.round_dir(1))
    query = pd.read_parquet(project.root / paths.round_dir(1) / paths.QUERY)
    clean = round0["clean_guess"].to_numpy()
    assert labels["sample_id"].tolist() == round0["sample_id"].tolist()
    assert (labels.loc[clean, "label_source"] == "paper_protocol").all()
    assert (labels.loc[clean, "label"] == labels.loc[clean, "true_label"]).all()
    asked = labels["sample_id"].isin(query["sample_id"]).to_numpy()
    assert asked.sum() == 3 and (labels.loc[asked, "label_source"] == "oracle").all()
    assert (labels.loc[~clean & ~asked, "label_source"] == "observed").all()
    metrics = read_json(project, paths.round_metrics(1))
    assert metrics["paper_protocol"] is True
    assert metrics["paper_protocol_labels"] == int(clean.sum())
    wrong_in_c = int((round0.loc[clean, "label"] != round0.loc[clean, "true_label"]).sum())
    wrong_asked = int((round0.loc[asked, "label"] != round0.loc[asked, "true_label"]).sum())
    assert metrics["cleaning"]["fixed_this_round"] == wrong_in_c + wrong_asked
    assert read_json(project, paths.REPORT_METRICS)["paper_protocol"] is True


# ----------------------------------------------------------------------------- experiments


def test_exp_run_budget_and_strategy_rerun_only_the_round_stages(pipeline):
    """`dvc exp run -S budget=... -S al.strategy=margin` from the committed run (one experiment
    for both keys: each would re-run every round stage anyway, and each run costs a minute)."""
    project, _ = pipeline
    back_to_head(project)
    entropy_scores = pd.read_parquet(project.root / paths.round_dir(1) / paths.SCORES)
    result = project.dvc("exp", "run", "-S", "budget=8", "-S", "al.strategy=margin", timeout=600)
    ran = ran_stages(result.stdout)
    assert ran == stages_of(2), result.stdout
    assert not set(ran) & set(PHASE1)
    assert [read_json(project, paths.round_metrics(r))["budget_used"] for r in (1, 2)] == [4, 8]
    assert len(pd.read_parquet(project.root / paths.round_dir(1) / paths.QUERY)) == 4
    margin_scores = pd.read_parquet(project.root / paths.round_dir(1) / paths.SCORES)
    assert margin_scores["sample_id"].tolist() == entropy_scores["sample_id"].tolist()  # same pool
    assert (margin_scores["score"] <= 0).all() and (margin_scores["score"] >= -1).all()
    assert not np.allclose(margin_scores["score"], entropy_scores["score"])
    assert read_json(project, paths.REPORT_METRICS)["strategy"] == "margin"

    diff = json.loads(project.dvc("metrics", "diff", "--json").stdout)  # HEAD against the workspace
    assert diff["metrics/report.json"]["budget_used"] == {"old": BUDGET, "new": 8, "diff": 2}
    assert diff["metrics/report.json"]["strategy"]["old"] == "entropy"
    assert diff["metrics/report.json"]["strategy"]["new"] == "margin"
    assert diff["metrics/rounds/2.json"]["budget_used"]["new"] == 8
    assert diff["metrics/rounds/1.json"]["budget_round"] == {"old": 3, "new": 4, "diff": 1}
    assert "metrics/lnl.json" not in diff

    shown = [entry["data"]["params"]["params.yaml"]["data"] for entry in experiments(project)]
    assert any(p["budget"] == 8 and p["al"]["strategy"] == "margin" for p in shown), shown


def experiments(project) -> list[dict]:
    """The experiment entries of `dvc exp show --json` (not the workspace or the baseline)."""
    shown = json.loads(project.dvc("exp", "show", "--json", "--no-pager").stdout)
    return [rev for baseline in shown for exp in baseline.get("experiments") or [] for rev in exp["revs"]]


def test_retrain_options_rerun_only_the_retrain_stages_and_what_follows(pipeline):
    """al.train_on: lnl, al.class_balance: sampler: each round continues Co-teaching's pair
    (round 1 the pair from phase 1) and hands both networks on."""
    import torch

    project, _ = pipeline
    back_to_head(project)
    # 3 epochs: with lnl.vog_window 2 VOG steers the third (2 is refused: it would steer none)
    set_params(project, {"al": {"train_on": "lnl", "class_balance": "sampler", "epochs": 3}})
    result = project.dvc("repro", timeout=900)
    ran = ran_stages(result.stdout)
    assert ran[0] == "retrain@1" and "retrain@2" in ran and ran[-1] == "report", result.stdout
    assert not set(ran) & {*PHASE1, "score_samples@1", "query@1", "oracle_relabel@1"}
    rounds = [read_json(project, paths.round_metrics(r)) for r in (1, 2)]
    assert [m["from_scratch"] for m in rounds] == [False, False]
    for metrics in rounds:
        assert metrics["train_on"] == "lnl" and metrics["class_balance"] == "sampler"
        assert metrics["train_size"] == NUM_TRAIN
        assert 0.0 <= metrics["selection"]["precision"] <= 1.0
        cleaning = metrics["cleaning"]
        assert cleaning["random_expected_fixes"] > 0
        assert cleaning["fixed_by_queries"] <= cleaning["best_possible_fixes"] <= metrics["budget_round"]
    for r in (1, 2):
        checkpoint = torch.load(project.root / paths.round_dir(r) / paths.MODEL, weights_only=False)
        assert checkpoint["peer_state_dict"] is not None


def test_a_round_override_reruns_that_round_only(pipeline):
    """`dvc exp run -S +rounds.2.retrain=scratch -S +rounds.2.epochs=3` (docs/experiments.md's recipe for
    a last round from scratch) retrains round 2 only. The scoring, query and oracle stages
    depend on the whole `rounds` key (their budgets follow the number of rounds), so they
    re-run, to the same outputs, and retrain@1 is reused."""
    project, _ = pipeline
    back_to_head(project)
    before = {r: labels_of(project, paths.round_dir(r)) for r in (1, 2)}
    result = project.dvc("exp", "run", "-S", "+rounds.2.retrain=scratch", "-S", "+rounds.2.epochs=3", timeout=600)
    ran = ran_stages(result.stdout)
    assert [s for s in ran if s.startswith("retrain")] == ["retrain@2"] and ran[-1] == "report", result.stdout
    assert not set(ran) & set(PHASE1)
    for r in (1, 2):
        pd.testing.assert_frame_equal(labels_of(project, paths.round_dir(r)), before[r])
    rounds = [read_json(project, paths.round_metrics(r)) for r in (1, 2)]
    assert [m["from_scratch"] for m in rounds] == [False, True]
    assert [m["epochs"] for m in rounds] == [TINY["al"]["epochs"], 3]
    # round 2 hands on the fresh network, or round 1's model when that validates no worse
    import torch

    weights = [torch.load(project.root / paths.round_dir(r) / paths.MODEL, weights_only=False)["state_dict"]
               for r in (1, 2)]  # fmt: skip
    same = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert same is rounds[1]["kept_previous"]
    if rounds[1]["kept_previous"]:
        assert rounds[1]["best_epoch"] is None and rounds[1]["val"] == rounds[0]["val"]
    else:
        assert 0 <= rounds[1]["best_epoch"] < 3 and rounds[1]["val"]["macro_f1"] > rounds[0]["val"]["macro_f1"]


def test_ssl_initialisation_frozen_head_and_a_feature_rule(pipeline):
    """pretrain.method simclr, model.init ssl, model.freeze backbone, lnl.selection knn_vote:
    pretrain trains, phase 1 and both rounds train a linear head on the cached embeddings (the
    rounds read the embeddings too), C is the neighbour vote; the round stages then re-run
    nothing on a second repro."""
    import torch

    project, _ = pipeline
    back_to_head(project)
    set_params(project, {"pretrain": {"method": "simclr", "epochs": 2},
                         "model": {"init": "ssl", "freeze": "backbone"},
                         "lnl": {"method": "coteaching", "selection": "knn_vote", "knn_k": 5}})  # fmt: skip
    result = project.dvc("repro", timeout=900)
    ran = ran_stages(result.stdout)
    assert ran[0] == "pretrain" and "lnl_train" in ran and ran[-1] == "report", result.stdout
    assert set(stages_of(2)) <= set(ran)
    lnl = read_json(project, paths.LNL_METRICS)
    assert lnl["arch"] == "linear" and lnl["init"] == {"init": "ssl"} and lnl["freeze"] == "backbone"
    assert lnl["selection_rule"] == "knn_vote"
    embedding_dim = read_json(project, paths.PRETRAIN_METRICS)["embedding_dim"]
    for folder in (paths.LNL_DIR, paths.round_dir(2)):
        checkpoint = torch.load(project.root / folder / paths.MODEL, weights_only=False)
        assert checkpoint["spec"]["arch"] == "linear" and checkpoint["spec"]["in_channels"] == embedding_dim
    assert [read_json(project, paths.round_metrics(r))["retrained"] for r in (1, 2)] == [True, True]
    assert ran_stages(project.dvc("repro").stdout) == []
