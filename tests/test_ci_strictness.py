"""$AUDIOLDM_REQUIRE_ALL (CI) makes a missing optional dependency fail the run instead of skipping its tests."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importorskip_fails_under_require_all(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_x.py").write_text("import pytest\n\ndef test_x():\n    pytest.importorskip('no_such_module_x')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOLDM_REQUIRE")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    lax = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert lax.returncode == 0 and "1 skipped" in lax.stdout, lax.stdout[-1000:]
    strict = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**env, "AUDIOLDM_REQUIRE_ALL": "1"})
    assert strict.returncode == 1 and "AUDIOLDM_REQUIRE_ALL is set but no_such_module_x" in strict.stdout, \
        strict.stdout[-1000:]
