"""The run config: the original code's network at fair defaults, round trips, overrides, and one clear line for every
bad value."""

from __future__ import annotations

import pytest
from support import ORIGINAL

from objectives import ConfigError, TrialConfig


def test_an_empty_config_is_the_original_network_and_training_at_the_fair_defaults():
    cfg = TrialConfig.from_dict({})
    assert (cfg.model.neuron, cfg.model.surrogate, cfg.training.backprop) == ("leaky", "fast_sigmoid", "bptt")
    assert (cfg.model.beta, cfg.model.alpha, cfg.model.num_steps, cfg.model.channels) == (0.5, 0.7, 25, (12, 64))
    assert (cfg.training.optimizer, cfg.training.lr, cfg.training.batch_size) == ("adamax", 0.01, 128)
    assert (cfg.training.loss, cfg.training.early_stopping_patience) == ("ce_rate", 10)
    assert cfg.dataset.val_size == 5000
    # the fair defaults: gain matched, the normalized surrogates, standardized pixels, one step per batch, one reset
    assert (cfg.model.gain, cfg.model.surrogate_scale, cfg.training.step_every) == ("matched", "normalized", "batch")
    assert cfg.replace(**{"model.neuron": "alpha"}).resolved().model.reset_mechanism == "subtract"
    assert cfg.resolved().dataset.normalize is True
    assert cfg.replace(**{"model.encoding": "rate"}).resolved().dataset.normalize is False  # rate needs [0, 1]


def test_original_yaml_is_the_original_codes_set_up_with_snntorchs_arithmetic():
    """study/presets/original.yaml (README: the set-up this project started from) differs from the fair defaults
    exactly where the README says: raw gain, snntorch's surrogate scale at slope 25, threshold 1, [0, 1] pixels,
    an optimizer step per window, and the alpha neuron's snntorch reset (zero) and alpha 0.9."""
    cfg = TrialConfig.from_dict(ORIGINAL).resolved()
    default = TrialConfig.from_dict({"training": {"epochs": 3}}).resolved()
    assert (cfg.model.gain, cfg.model.surrogate_scale, cfg.training.step_every) == ("raw", "raw", "window")
    assert (cfg.model.surrogate_args, cfg.model.threshold, cfg.dataset.normalize) == ({"slope": 25}, 1.0, False)
    differing = {f"{section}.{k}" for section, fields in cfg.to_dict().items() for k, v in fields.items()
                 if default.to_dict()[section][k] != v}
    assert differing == {"model.gain", "model.surrogate_scale", "model.surrogate_args", "model.threshold",
                         "dataset.normalize", "training.step_every", "model.alpha"}
    alpha = TrialConfig.from_dict(ORIGINAL).replace(**{"model.neuron": "alpha"}).resolved()
    assert (alpha.model.reset_mechanism, alpha.model.alpha) == ("zero", 0.9)


def test_to_dict_from_dict_round_trips_the_resolved_config():
    for scale, args in (("raw", {"alpha": 2.0}), ("normalized", {})):
        # reset_mechanism null: the neuron's own default, spelled out when resolved
        data = {"model": {"neuron": "alpha", "surrogate": "atan", "surrogate_scale": scale, "reset_mechanism": None}}
        cfg = TrialConfig.from_dict(data).resolved()
        again = TrialConfig.from_dict(cfg.to_dict())
        assert again == cfg
        assert again.model.surrogate_args == args and again.model.reset_mechanism == "zero"
        assert again.dataset.normalize is True


def test_overrides_set_nested_fields():
    cfg = TrialConfig.from_dict({}).replace(**{"model.surrogate": "atan", "training.lr": 0.001, "model.channels": [8]})
    assert (cfg.model.surrogate, cfg.training.lr, cfg.model.channels) == ("atan", 0.001, (8,))


def test_data_root_comes_from_the_config_then_the_environment_then_data(monkeypatch):
    monkeypatch.delenv("SNN_STUDY_DATA", raising=False)
    assert TrialConfig.from_dict({}).dataset.resolved_root == "data/"
    monkeypatch.setenv("SNN_STUDY_DATA", "/somewhere")
    assert TrialConfig.from_dict({}).dataset.resolved_root == "/somewhere"
    assert TrialConfig.from_dict({"dataset": {"root": "/here"}}).dataset.resolved_root == "/here"


BAD = [
    ({"modle": {}}, "modle", "allowed: dataset, model, training"),
    ({"model": {"nuron": "leaky"}}, "model.nuron", "allowed: neuron, surrogate"),
    ({"model": {"neuron": "izhikevich"}}, "model.neuron", "allowed: alpha, leaky, synaptic, lapicque"),
    ({"model": {"surrogate": "tanh"}}, "model.surrogate", "allowed: atan, fast_sigmoid"),
    ({"model": {"surrogate_args": {"alpha": 2}, "surrogate_scale": "raw"}}, "model.surrogate_args.alpha",
     "allowed: slope"),
    ({"model": {"surrogate_args": {"slope": 2}}}, "model.surrogate_args.slope",
     "set by model.surrogate_width under model.surrogate_scale normalized; allowed: none"),
    ({"model": {"surrogate": "sparse_fast_sigmoid", "surrogate_args": {"B": 0.4}, "surrogate_width": 0.5}},
     "model.surrogate_args.B", "must be > model.surrogate_width (0.5)"),
    ({"model": {"surrogate": "escape_noise", "surrogate_args": {"noise": 0}}}, "model.surrogate_args.noise",
     "must be > 0"),
    ({"model": {"surrogate": "escape_noise", "surrogate_args": {"noise": -1}, "surrogate_scale": "raw"}},
     "model.surrogate_args.noise", "must be > 0"),
    ({"model": {"surrogate_scale": "unit"}}, "model.surrogate_scale", "allowed: normalized, raw"),
    ({"model": {"surrogate_width": 0}}, "model.surrogate_width", "> 0"),
    ({"model": {"gain": "auto"}}, "model.gain", "allowed: matched, raw"),
    ({"model": {"beta": 1.0}}, "model.beta", "model.gain matched needs beta < 1"),
    ({"model": {"neuron": "synaptic", "alpha": 1.0}}, "model.alpha", "model.gain matched needs alpha < 1"),
    ({"model": {"surrogate_args": {"slope": "steep"}}}, "model.surrogate_args", "mapping of names to numbers"),
    ({"model": {"beta": 1.5}}, "model.beta", "within [0, 1]"),
    ({"model": {"beta": "high"}}, "model.beta", "expected a number"),
    ({"model": {"threshold": 0}}, "model.threshold", "> 0"),
    ({"model": {"neuron": "alpha", "alpha": 0.4}}, "model.alpha", "alpha > beta"),
    ({"model": {"num_steps": 0}}, "model.num_steps", ">= 1"),
    ({"model": {"num_steps": 2.5}}, "model.num_steps", "expected an integer"),
    ({"model": {"channels": []}}, "model.channels", "at least one conv block"),
    ({"model": {"channels": [12, "x"]}}, "model.channels", "list of integers"),
    ({"model": {"encoding": "latency"}}, "model.encoding", "allowed: direct, rate"),
    ({"model": {"reset_mechanism": "soft"}}, "model.reset_mechanism", "allowed: subtract, zero, none"),
    ({"training": {"backprop": "eprop"}}, "training.backprop", "allowed: bptt, tbptt, rtrl"),
    ({"training": {"backprop": "tbptt", "tbptt_window": 26}}, "training.tbptt_window", "<= model.num_steps (25)"),
    ({"training": {"epochs": 0}}, "training.epochs", ">= 1"),
    ({"training": {"epochs": True}}, "training.epochs", "expected an integer"),
    ({"training": {"batch_size": -1}}, "training.batch_size", ">= 1"),
    ({"training": {"optimizer": "lbfgs"}}, "training.optimizer", "allowed: adamax, adam, adamw, sgd"),
    ({"training": {"lr": 0}}, "training.lr", "> 0"),
    ({"training": {"loss": "nll"}}, "training.loss", "allowed: ce_rate, ce_count"),
    ({"training": {"loss": "mse_count", "backprop": "rtrl"}}, "training.loss", "needs windows of >= 2 time steps"),
    ({"training": {"loss": "mse_count", "backprop": "tbptt", "tbptt_window": 1}}, "training.loss", "tbptt_window >= 2"),
    ({"training": {"device": "tpu"}}, "training.device", "allowed: auto, cpu, cuda"),
    ({"training": {"engine": "jax"}}, "training.engine", "allowed: fast, snntorch"),
    ({"training": {"step_every": "epoch"}}, "training.step_every", "allowed: batch, window"),
    # the alpha neuron's delay: 3 spiking layers need windows of >= 4 steps
    ({"model": {"neuron": "alpha"}, "training": {"backprop": "rtrl"}}, "training.backprop",
     "a truncation window of 1 step(s) gives the first convolution no gradient; use windows of >= 4 steps"),
    ({"model": {"neuron": "alpha"}, "training": {"backprop": "tbptt", "tbptt_window": 3}}, "training.tbptt_window",
     "use windows of >= 4 steps"),
    ({"model": {"neuron": "alpha", "num_steps": 3}}, "model.num_steps", "use windows of >= 4 steps"),
    ({"model": {"neuron": "alpha", "channels": [4]}, "training": {"backprop": "tbptt", "tbptt_window": 2}},
     "training.tbptt_window", "use windows of >= 3 steps"),
    ({"dataset": {"name": "cifar"}}, "dataset.name", "allowed: mnist, fashion_mnist, synthetic"),
    ({"dataset": {"val_size": 0}}, "dataset.val_size", ">= 1"),
    ({"dataset": []}, "dataset", "expected a mapping"),
    # issue 11, 14: what a library would refuse once the run starts
    ({"model": {"threshold": float("nan")}}, "model.threshold", "expected a finite number"),
    ({"model": {"beta": float("inf")}}, "model.beta", "expected a finite number"),
    ({"training": {"lr": 10**400}}, "training.lr", "expected a finite number"),
    ({"model": {"surrogate_args": {"slope": float("nan")}}}, "model.surrogate_args", "each finite"),
    ({"training": {"seed": -1}}, "training.seed", "within [0, 18446744073709551615]"),
    ({"training": {"seed": 2**64}}, "training.seed", "within [0, 18446744073709551615]"),
    ({"model": {"channels": [12, 2**20]}}, "model.channels", "<= 65536"),
    ({"model": {"num_steps": 10**6}}, "model.num_steps", "<= 100000"),
    ({"model": {"kernel_size": 13}}, "model.channels", "2 conv blocks of kernel 13 shrink a 28x28 image to nothing"),
    ({"model": {"channels": [4, 4, 4, 4], "kernel_size": 3}}, "model.channels", "4 conv blocks of kernel 3"),
    ({"training": {"device": "cuda:first"}}, "training.device", "allowed: auto, cpu, cuda, cuda:N"),
    ({"training": {"device": "cuda:"}}, "training.device", "allowed: auto, cpu, cuda, cuda:N"),
    ({"dataset": {"normalize": True}, "model": {"encoding": "rate"}}, "dataset.normalize", "needs pixels in [0, 1]"),
]


@pytest.mark.parametrize("data, field, allowed", BAD, ids=[b[1] + ":" + str(i) for i, b in enumerate(BAD)])
def test_a_bad_value_names_the_field_the_value_and_what_is_allowed(data, field, allowed):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(data)
    message = str(err.value)
    assert err.value.field == field
    assert message.startswith(field + ": got ")
    assert allowed in message
    assert "\n" not in message


def test_a_device_this_machine_lacks_is_named_before_anything_runs(monkeypatch):
    """``missing_device`` as a machine with two GPUs answers it (torch's answers stood in), and one without."""
    import torch

    from objectives import missing_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [missing_device(d) for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:1")] == [None] * 5
    assert missing_device("cuda:7") == "this machine has 2 CUDA devices (cuda:0 to cuda:1)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert missing_device("cpu") is None
    for device in ("cuda", "cuda:0"):
        assert missing_device(device) == "this machine has no CUDA device (torch sees none); use cpu or auto"


def test_an_error_line_shows_a_value_of_any_size_briefly_and_fast():
    """A value can come from a YAML alias that names billions of items: the line shows a few (issue 11, 8)."""
    import time

    value: object = ["lol"] * 9
    for _ in range(9):
        value = [value] * 9  # 9**10 strings, shared: rendering them whole would take gigabytes
    start = time.monotonic()
    message = str(ConfigError("model.channels", value, "expected a list of integers"))
    assert time.monotonic() - start < 1 and len(message) < 400 and "\n" not in message
    assert message.startswith("model.channels: got [[[[...]") and message.endswith("; expected a list of integers")
    assert str(ConfigError("search.lr", {"low": 0.1, "high": 0.01}, "x")) == \
        "search.lr: got {'low': 0.1, 'high': 0.01}; x"
    long = str(ConfigError("study.name", "n" * 9000, "too long"))
    assert len(long) < 400 and "...(8726 characters)..." in long
