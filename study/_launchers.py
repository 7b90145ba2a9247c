"""The launchers that run a study's workers elsewhere, keyed as ``launcher.name`` (``local`` is not one: it is
``study._runner.run``): each launcher's checks, made before anything is written, and its launch."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from objectives import ConfigError

from ._launch import check_server_storage, check_shared_folder


def check_slurm(cfg) -> None:
    """Refuse a Slurm launch that cannot work, before anything is written or submitted."""
    try:
        import submitit  # noqa: F401 - only its presence is checked here
    except ImportError:
        raise ConfigError("launcher.name", "slurm", 'needs submitit: pip install "snn-study[slurm]"') from None
    if shutil.which("sbatch") is None:
        raise ConfigError("launcher.name", "slurm", "sbatch is not on PATH; launch from a machine that submits "
                          "Slurm jobs (a login node)")
    check_server_storage(cfg.study.storage)
    if cfg.study.devices:
        raise ConfigError("study.devices", list(cfg.study.devices), "a Slurm task trains on the GPU Slurm gives it; "
                          "set launcher.gpus_per_worker instead")
    check_shared_folder("study.artifacts", cfg.study.artifacts)


def _launch_slurm(cfg, quiet: bool, wait: bool) -> int:
    from ._slurm import launch  # submitit and the Slurm machinery only when a study is launched

    return launch(cfg, quiet=quiet, wait=wait)


@dataclass(frozen=True)
class Launcher:
    """A way to run a study's workers elsewhere: its checks (before anything is written) and its launch."""

    check: Callable[[Any], None]
    launch: Callable[[Any, bool, bool], int]


LAUNCHERS: dict[str, Launcher] = {"slurm": Launcher(check_slurm, _launch_slurm)}


def launcher_for(cfg) -> Launcher | None:
    """The launcher of ``cfg``, its rules checked; ``None`` for local workers."""
    launcher = LAUNCHERS.get(cfg.launcher.name)
    if launcher is not None:
        launcher.check(cfg)
    return launcher
