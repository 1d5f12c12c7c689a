"""Every process imports the composition root as it starts (and `make test` starts hundreds):
the packages only some processes need are imported when first used, not by the root."""

from __future__ import annotations

import subprocess
import sys

LAZY = ("openai", "bs4")  # the model's client (worker, media), Gmail's HTML reader (worker, delivery)


def test_the_composition_root_imports_no_model_client_and_no_html_parser() -> None:
    probe = "import sys, agentstream.wiring, agentstream.cli; print(' '.join(m for m in %r if m in sys.modules))" % (LAZY,)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.split() == [], f"imported at start by every process: {run.stdout.strip()}"
