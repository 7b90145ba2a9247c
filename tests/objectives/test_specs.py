"""Every registry of implementations has exactly the keys of its spec table, and agrees with what the spec says."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from support import mnist_root

import objectives
from objectives import (
    BACKPROPS,
    DATASET_NAMES,
    DATASETS,
    ENCODING_SPECS,
    ENCODINGS,
    GAINS,
    IMAGE_SIZES,
    LOSS_SPECS,
    LOSSES,
    NEURON_SPECS,
    NEURONS,
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    SURROGATE_PARAMS,
    SURROGATE_SPECS,
    SURROGATES,
    TrialConfig,
)


@pytest.mark.parametrize(
    ("registry", "specs"),
    [(NEURONS, NEURON_SPECS), (SURROGATES, SURROGATE_SPECS), (LOSSES, LOSS_SPECS), (ENCODINGS, ENCODING_SPECS),
     (OPTIMIZERS, OPTIMIZER_NAMES), (DATASETS, DATASET_NAMES)],
    ids=["neurons", "surrogates", "losses", "encodings", "optimizers", "datasets"],
)
def test_a_registry_and_its_spec_table_have_the_same_keys_in_the_same_order(registry, specs):
    assert list(registry) == list(specs)


@pytest.mark.parametrize("name", NEURON_SPECS)
def test_a_neuron_class_takes_exactly_the_parameters_its_spec_names(name):
    cls = NEURONS[name]
    assert cls.spec is NEURON_SPECS[name]
    taken = set(inspect.signature(cls.__init__).parameters) - {"self", "spike_fn", "threshold", "reset_mechanism",
                                                                "gain"}
    assert taken == set(NEURON_SPECS[name].params)


@pytest.mark.parametrize("name", SURROGATE_SPECS)
def test_a_surrogate_factory_takes_exactly_the_parameters_its_spec_names(name):
    signature = inspect.signature(SURROGATES[name].factory)
    assert set(signature.parameters) == set(SURROGATE_SPECS[name].params)
    assert set(SURROGATE_SPECS[name].params) <= set(SURROGATE_PARAMS)


@pytest.mark.parametrize("gain", GAINS)
@pytest.mark.parametrize("name", NEURON_SPECS)
def test_a_neuron_s_rule_refuses_in_the_config_what_its_class_refuses(name, gain):
    for alpha, beta in [(0.9, 0.5), (0.3, 0.5), (0.9, 0.2), (0.9, 0.999), (1.0, 0.5), (0.9, 1.0)]:
        problem = NEURON_SPECS[name].check(alpha=alpha, beta=beta, gain=gain)
        surrogate = SURROGATES["atan"].make()
        params = {"alpha": alpha, "beta": beta}
        try:
            NEURONS[name](surrogate, gain=gain, **{p: params[p] for p in NEURON_SPECS[name].params})
            built = True
        except ValueError:
            built = False
        assert built == (problem is None or problem[0] not in NEURON_SPECS[name].params), (alpha, beta)


@pytest.mark.parametrize("name", SURROGATE_SPECS)
def test_a_surrogate_s_width_sets_some_of_its_own_parameters_and_its_peak_reads_them(name):
    spec = SURROGATE_SPECS[name]
    assert set(spec.width_params) <= set(spec.params)
    assert spec.peak(**spec.params) > 0
    if spec.width is not None:
        assert spec.width_params and spec.peak(**{**spec.params, **spec.width(0.5)}) > 0
    assert set(spec.free("raw")) == set(spec.params)
    assert set(spec.free("normalized")) == set(spec.params) - set(spec.width_params)


def test_every_backprop_method_gives_a_window_length_from_the_config():
    cfg = TrialConfig.from_dict({"model": {"num_steps": 12}, "training": {"tbptt_window": 4}})
    assert {name: window(cfg) for name, window in BACKPROPS.items()} == {"bptt": 12, "tbptt": 4, "rtrl": 1}


def test_the_light_half_is_what_the_package_imports_eagerly():
    eager = {name for name in objectives.__all__ if name in vars(objectives)}
    assert {"ConfigError", "TrialConfig", "TrialRecord", "Combination", "NEURON_SPECS"} <= eager


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_each_datasets_image_size_is_the_one_its_spec_names(name):
    """Configs whose conv blocks shrink an image to nothing are refused from IMAGE_SIZES, before any data is read."""
    assert list(IMAGE_SIZES) == list(DATASET_NAMES)
    if name != "synthetic" and mnist_root() is None:
        pytest.skip("no MNIST here")
    cfg = TrialConfig.from_dict({"dataset": {"name": name, "val_size": 100,
                                             "root": str(mnist_root()) if name != "synthetic" else None}})
    if name == "fashion_mnist" and not (Path(cfg.dataset.resolved_root) / "FashionMNIST").is_dir():
        pytest.skip("no Fashion-MNIST here")
    assert tuple(objectives.load(cfg.dataset).input_shape[1:]) == IMAGE_SIZES[name]
