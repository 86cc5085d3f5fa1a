"""Every parameter with a fixed set of choices has one list of them (alr_core.common.params), and
every place that must handle or describe each choice does: the code that dispatches on it, the
tests that enumerate it, docs/parameters.md and the comments of params.yaml. Adding a name to
one of those lists without the rest fails here, not in a stage after phase 1 has trained."""

from __future__ import annotations

import dataclasses
import re
import typing

import numpy as np
import pytest
import torch
from builders import REPO_ROOT

from alr_core.active import scoring
from alr_core.common import params as P
from alr_core.common.errors import AlrError
from alr_core.data.datasets import SplitData
from alr_core.data.sources import READERS, source_files
from alr_core.nn.models import ModelSpec, build_model
from alr_core.ssl.loop import collapse_loss
from alr_core.ssl.loss import OBJECTIVES


def literal_choices(cls, prefix=""):
    """Every Literal-typed leaf of ``cls``: dotted key → its string choices."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            found |= literal_choices(kind, f"{prefix}{f.name}.")
            continue
        names = []
        todo = [kind]
        while todo:
            t = todo.pop()
            if typing.get_origin(t) is typing.Literal:
                names += [a for a in typing.get_args(t) if isinstance(a, str)]
            else:
                todo += [a for a in typing.get_args(t) if not isinstance(a, (str, int))]
        if names:
            found[f"{prefix}{f.name}"] = names
    return found


CHOICES = {k: v for k, v in literal_choices(P.Params).items() if not k.startswith("rounds")}


def test_the_choice_lists_are_the_literal_types():
    assert CHOICES["al.strategy"] == list(P.STRATEGIES)
    assert CHOICES["data.source"] == list(P.SOURCES)
    rules = P.BATCH_RULES + P.CLASS_RULES + P.FEATURE_RULES
    assert CHOICES["lnl.selection"] == list(rules)
    assert len(set(rules)) == len(rules), "a rule name is in two of BATCH_RULES, CLASS_RULES, FEATURE_RULES"
    assert set(P.VOG_RULES) <= set(rules) and set(P.GENERATED_SOURCES) <= set(P.SOURCES)


def test_every_source_has_a_reader_and_declares_its_files(tmp_path):
    assert list(READERS) == list(P.SOURCES)
    with pytest.raises(AlrError, match="does not list its files"):
        source_files(P.DataParams(source="dicom_folder", path=str(tmp_path)))  # a name with no branch


def test_every_pretrain_method_but_none_has_its_objective():
    # a method without one trained with VICReg's loss, unsaid, and failed at the stage's summary line
    assert [*OBJECTIVES, "none"] == CHOICES["pretrain.method"]
    assert collapse_loss("simclr", 256) == pytest.approx(np.log(511)) and collapse_loss("none", 256) is None
    assert collapse_loss("vicreg", 256) == pytest.approx(49.5)  # 2 · 25 · (1 − √1e-4)


def test_a_strategy_without_a_scoring_branch_names_the_valid_ones(monkeypatch):
    monkeypatch.setattr(scoring, "STRATEGIES", (*P.STRATEGIES, "margin_entropy"))
    params = dataclasses.replace(P.Params(), al=dataclasses.replace(P.AlParams(), strategy="margin_entropy"),
                                 train=dataclasses.replace(P.TrainParams(), device="cpu"))  # fmt: skip
    train = SplitData(np.array(["a", "b"]), np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]))
    model = build_model(ModelSpec("small_cnn", 2, 1, 8, 0.0))
    with torch.no_grad(), pytest.raises(AlrError, match="'margin_entropy' has no scoring branch; valid: random, "):
        scoring.score_pool(model, {"mean": [0.5], "std": [0.25]}, train, np.array([True, True]),
                           np.array([False, False]), 1, params, seed=0)  # fmt: skip


def docs_row(key: str) -> str:
    for line in (REPO_ROOT / "docs/parameters.md").read_text().splitlines():
        if line.startswith("| `") and f"`{key}`" in line.split("|")[1]:
            return line
    raise AssertionError(f"docs/parameters.md has no row for {key}")


def yaml_comment(key: str) -> str:
    """The comment of ``key``'s line in params.yaml and of the comment-only lines under it."""
    lines = (REPO_ROOT / "params.yaml").read_text().splitlines()
    group, leaf = (key.rsplit(".", 1) + [""])[:2] if "." in key else ("", key)
    in_group = not group
    for i, line in enumerate(lines):
        if group and re.match(rf"{re.escape(group.split('.')[0])}:", line):
            in_group = True
        if in_group and re.match(rf"\s+{re.escape(leaf)}:", line):
            comment = [line.split("#", 1)[1] if "#" in line else ""]
            for rest in lines[i + 1:]:
                if not rest.lstrip().startswith("#"):
                    break
                comment.append(rest.split("#", 1)[1])
            return " ".join(comment)
    raise AssertionError(f"params.yaml has no line for {key}")


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_docs_name_every_choice(key):
    row = docs_row(key)
    missing = [c for c in CHOICES[key] if f"`{c}`" not in row]
    assert missing == [], f"docs/parameters.md's row of {key} does not name {missing}"


# keys whose params.yaml comment points elsewhere rather than listing every choice
YAML_COMMENT_PARTIAL = {"model.freeze", "train.device", "train.eval_batch_size", "data.channels"}


@pytest.mark.parametrize("key", sorted(set(CHOICES) - YAML_COMMENT_PARTIAL))
def test_params_yaml_comment_names_every_choice(key):
    comment = yaml_comment(key)
    missing = [c for c in CHOICES[key] if not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", comment)]
    assert missing == [], f"params.yaml's comment of {key} does not name {missing}"
