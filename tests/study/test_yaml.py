"""How a config's YAML is read (study/_yaml.py): YAML 1.2 numbers, one value per key, bounded size (issue 11)."""

from __future__ import annotations

import math

import pytest

from study._cli import UsageError, parse_set, read_yaml
from study._yaml import MAX_VALUES, YamlProblem, load

NUMBERS = [
    ("1e-3", 0.001), ("5E-4", 0.0005), ("1e3", 1000.0), (".5", 0.5), ("-.5", -0.5), ("+1.", 1.0), ("3.0e+2", 300.0),
    ("12", 12), ("-7", -7), ("0777", 777), ("0o17", 15), ("0x1F", 31),
]


@pytest.mark.parametrize(("text", "value"), NUMBERS, ids=[t for t, _ in NUMBERS])
def test_numbers_are_read_as_yaml_1_2_writes_them(text, value):
    read = load(f"lr: {text}")["lr"]
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize("text", [".inf", "-.Inf", ".NAN"])
def test_infinity_and_nan_are_numbers_for_validation_to_refuse(text):
    assert not math.isfinite(load(f"x: {text}")["x"])


@pytest.mark.parametrize("text", ["1_000", "1:30", "0b101", "1e", "e3", "12abc"])
def test_what_yaml_1_2_does_not_call_a_number_stays_text(text):
    assert load(f"x: {text}")["x"] == text


def test_a_learning_rate_in_exponent_form_reaches_the_config_as_a_float(tmp_path):
    assert parse_set(["training.lr=1e-3", "model.beta=5e-1"]) == {"training.lr": 0.001, "model.beta": 0.5}
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  lr: 3e-4\n")
    assert read_yaml(str(path)) == {"training": {"lr": 0.0003}}


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "m:\n  lr: 0.1\n  lr: 0.2\n", "{a: 1, b: 2, a: 3}", "[{x: 1, x: 1}]"])
def test_a_duplicate_key_is_refused_naming_it_and_its_line(text):
    with pytest.raises(YamlProblem, match=r"^duplicate key '(a|lr|x)' at line \d+; give each key once$"):
        load(text)


def test_a_merge_key_may_be_overridden_on_purpose():
    assert load("base: &b {lr: 0.1, beta: 0.5}\nrun:\n  <<: *b\n  lr: 0.2\n")["run"] == {"lr": 0.2, "beta": 0.5}


def test_aliases_are_fine_until_they_expand_past_the_bound():
    shared = load("a: &a [1, 2, 3]\nb: *a\nc: *a\n")
    assert shared["b"] == shared["c"] == [1, 2, 3]
    levels = "\n".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '0'] * 10)}]" for i in range(6))
    with pytest.raises(YamlProblem, match=f"more than {MAX_VALUES} values once its aliases are expanded"):
        load(levels)  # 10**6 values in 200 bytes


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &a [*a]", "an alias at line 1 makes a value contain itself"),
    ("[" * 100 + "]" * 100, "nested deeper than a config can need"),
    ("x: " + "7" * 5000, "a number of thousands of digits"),
    ("x: !!python/object/apply:os.system [true]", "not valid YAML at line 1 (could not determine a constructor"),
    ("x: [1", "not valid YAML at line 1"),
])
def test_what_cannot_be_a_config_is_one_line(text, problem):
    with pytest.raises(YamlProblem) as err:
        load(text)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_an_empty_config_file_is_refused_and_braces_ask_for_the_defaults(tmp_path):
    empty, braces = tmp_path / "empty.yaml", tmp_path / "defaults.yaml"
    empty.write_text("# to be written\n")
    braces.write_text("{}\n")
    with pytest.raises(UsageError, match="the file is empty; write {} in it to take every default"):
        read_yaml(str(empty))
    assert read_yaml(str(braces)) == {}


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"not UTF-8 text \(byte 0xe9 at offset 9\)"):
        read_yaml(str(path))
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffname: café\n".encode())
    assert read_yaml(str(bom)) == {"name": "café"}


def test_the_loader_is_the_safe_loader_with_numbers_and_duplicates_changed_only():
    import yaml

    from study._yaml import _Loader

    assert issubclass(_Loader, yaml.SafeLoader)
    assert not issubclass(_Loader, (yaml.FullLoader, yaml.UnsafeLoader))
    assert set(_Loader.yaml_constructors) == set(yaml.SafeLoader.yaml_constructors)
