"""The packages depend one way (objectives <- storage <- reports <- study) and the lower ones load no torch.

Each row imports one package in a fresh interpreter and lists what got loaded. import-linter
(``make test`` runs it) checks the same order on the source; this checks what an import costs
when it runs: ``snn-study list`` and ``dashboard`` must not pay for torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import REPO

PACKAGES = ("objectives", "storage", "reports", "study")


def loaded_by(statement: str) -> dict[str, object]:
    code = (
        f"import sys\n{statement}\n"
        "import json\n"
        "print(json.dumps({'project': sorted({m.split('.')[0] for m in sys.modules} & set(%r)),\n"
        "                  'torch': 'torch' in sys.modules, 'snntorch': 'snntorch' in sys.modules}))" % (PACKAGES,)
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("objectives", ["objectives"]),
        ("storage", ["objectives", "storage"]),
        ("reports", ["objectives", "reports", "storage"]),
        ("study", ["objectives", "reports", "storage", "study"]),
    ],
)
def test_a_package_loads_only_the_packages_below_it_and_no_torch(package, allowed):
    seen = loaded_by(f"import {package}")
    assert set(seen["project"]) <= set(allowed) and package in seen["project"]
    assert not seen["torch"] and not seen["snntorch"]


def test_the_command_line_entry_point_loads_no_torch():
    seen = loaded_by("from study import main")
    assert not seen["torch"]


def test_the_heavy_names_of_objectives_load_torch_on_first_use():
    seen = loaded_by("import objectives; objectives.train")
    assert seen["torch"]
    # and the names the package promises are all there
    every = "import objectives; [getattr(objectives, n) for n in objectives.__all__]"
    proc = subprocess.run([sys.executable, "-c", every], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_an_unknown_name_of_objectives_is_an_attribute_error():
    import objectives

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        objectives.nonexistent  # noqa: B018
