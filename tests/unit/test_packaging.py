"""The installed package (a wheel, as `pip install .` and the Dockerfile build it) holds every
module of the source folders under `agentstream.*`, and no generic top-level name; setuptools
builds it without a warning (`make up` installs it, and a fresh machine's first screen is that)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.services import ROOT

FOLDERS = {"agentstream": "agentstream", "streams": "agentstream/streams", "projections": "agentstream/projections",
           "adapters": "agentstream/adapters", "local": "agentstream/local"}


def test_the_wheel_has_every_module_and_data_file(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so no stale build/ folder of the checkout is packed
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *FOLDERS):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(source)],
                           check=True, capture_output=True, text=True, timeout=300)
    warnings = [line.strip() for line in (built.stdout + built.stderr).splitlines() if "Warning" in line]
    assert warnings == [], "setuptools warns as it builds the package"
    (wheel,) = tmp_path.glob("agentstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{target}/{path.relative_to(ROOT / folder)}" for folder, target in FOLDERS.items()
                for path in (ROOT / folder).rglob("*") if path.is_file() and path.suffix in (".py", ".json", ".html")
                and "__pycache__" not in path.parts}
    assert expected - names == set()
    assert {n.split("/")[0] for n in names if not n.startswith("agentstream-")} == {"agentstream"}
