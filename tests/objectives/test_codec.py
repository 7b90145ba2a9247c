"""The combination codec: study names, labels and file names built and read back in one place."""

from __future__ import annotations

import pytest

from objectives import (
    COMBINATION,
    COMBINATION_PATHS,
    Combination,
    belongs_to,
    cell_study_name,
    config_value,
    file_stem,
    parse_study_name,
    path_part,
    study_name_problem,
)

ODD = [
    Combination("leaky", "fast_sigmoid", "bptt"),
    Combination("my-neuron", "fast-sigmoid", "b-p"),  # a plugin's name with dashes
    Combination("n/1", "s::2", "b%3"),  # the separators themselves and a percent sign
    Combination("ünïcode", "with space", "x.y"),
]


@pytest.mark.parametrize("combo", ODD, ids=lambda c: c.label)
@pytest.mark.parametrize("stage", [None, "tune", "replicate"])
@pytest.mark.parametrize("parent", ["exp", "my-study", "a/b", "x y"])
def test_a_per_combination_study_name_round_trips(parent, stage, combo):
    name = cell_study_name(parent, combo, stage)
    cell = parse_study_name(name)
    assert cell is not None and (cell.parent, cell.stage, cell.combination) == (parent, stage, combo)
    assert belongs_to(name, parent) and not belongs_to(name, parent + "x")


def test_a_user_s_study_name_can_never_be_taken_for_a_per_combination_one():
    assert study_name_problem("exp") is None and study_name_problem("exp/leaky-atan-bptt") is None
    assert "reserved" in study_name_problem("exp::leaky/atan/bptt")
    assert parse_study_name("exp/leaky-atan-bptt") is None and parse_study_name("exp") is None
    assert not belongs_to("exp/leaky-atan-bptt", "exp")  # the old naming: a user's own study, not exp's
    assert not belongs_to("exp2::leaky/atan/bptt", "exp")
    assert parse_study_name("exp::leaky/atan") is None and parse_study_name("exp::bogus::a/b/c") is None


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stage"):
        cell_study_name("exp", ODD[0], "final")


def test_a_combination_is_read_from_a_config_from_params_and_from_either_spelling_of_a_search_key():
    config = {"model": {"neuron": "alpha", "surrogate": "atan"}, "training": {"backprop": "tbptt"}}
    assert Combination.from_config(config) == Combination("alpha", "atan", "tbptt")
    assert Combination.from_params({"neuron": "alpha", "surrogate": "atan", "backprop": "tbptt"}) == \
        Combination.from_params({"model.neuron": "alpha", "model.surrogate": "atan", "training.backprop": "tbptt"})
    partial = Combination.from_params({"neuron": "leaky"})
    assert not partial.known and partial.merged(Combination("x", "y", "z")) == Combination("leaky", "y", "z")
    assert Combination.from_config(None).label == "? / ? / ?"
    assert config_value(config, "neuron") == "alpha" and config_value(config, "loss") is None


def test_paths_labels_and_dicts_name_the_factors_in_one_order():
    combo = Combination("leaky", "atan", "bptt")
    assert tuple(combo.as_dict()) == COMBINATION
    assert tuple(combo.as_paths()) == COMBINATION_PATHS == ("model.neuron", "model.surrogate", "training.backprop")
    assert combo.label == "leaky / atan / bptt"


@pytest.mark.parametrize("value", ["..", ".", "/etc/passwd", "a/../../b", "", "C:\\x", ".hidden"])
def test_a_file_name_from_data_stays_one_name_inside_its_folder(tmp_path, value):
    part = path_part(value)
    assert "/" not in part and "\\" not in part and not part.startswith(".") and part
    assert (tmp_path / part).resolve().parent == tmp_path.resolve()
    assert file_stem(("leaky", value, "bptt")).count("-") >= 2
