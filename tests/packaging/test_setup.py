"""hack/setup.sh asks only for what the command at hand uses: nginx for the quickstart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.corpus import ROOT

pytestmark = pytest.mark.unit


def setup(mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script on a machine with no system package of ours and no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", "sha256sum", "cut", "uname", "id"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(found)
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(ROOT / "hack" / "setup.sh"), mode],
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs make setup")
def test_each_mode_names_only_what_it_needs(tmp_path: Path) -> None:
    quickstart = setup("quickstart", tmp_path)
    assert quickstart.returncode == 1
    assert "setup: quickstart needs nginx: install" in quickstart.stderr
    assert "prometheus" not in quickstart.stderr
    assert "wrk" not in quickstart.stderr
    test = setup("test", tmp_path)
    assert "prometheus" in test.stderr
    assert "wrk" not in test.stderr
    assert "wrk" in setup("bench", tmp_path).stderr
    wrong = setup("everything", tmp_path)
    assert wrong.returncode == 2
    assert "usage:" in wrong.stderr
