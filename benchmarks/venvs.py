"""The competitors' virtual environments, one each, outside the project's .venv.

MLServer and KServe have heavy dependencies that conflict with each other and with ours, so
each lives in its own venv under ``~/.cache/mlops-operator/bench-venvs/<name>``, created on
first use with pinned versions and reused afterwards (a stamp file records what was installed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(
    os.environ.get("MLOPS_BENCH_VENVS", Path.home() / ".cache" / "mlops-operator" / "bench-venvs")
)

# Pinned: the latest releases when the benchmark was written. scikit-learn is pinned to the
# project's version so that all three servers run the very same estimator code.
SKLEARN = "scikit-learn==1.9.1"
REQUIREMENTS: dict[str, list[str]] = {
    # uvloop 0.22+ breaks MLServer 1.7.1's inference worker processes (no current event loop).
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0", SKLEARN],
    "kserve": ["kserve==0.21.0", SKLEARN],
}


def python(name: str) -> Path:
    return CACHE / name / "bin" / "python"


def ensure(name: str, *, quiet: bool = True) -> Path:
    """The venv's python, creating the venv and installing its pinned packages when needed."""
    requirements = REQUIREMENTS[name]
    venv = CACHE / name
    stamp = venv / (
        ".installed-" + hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    )
    if stamp.exists():
        return python(name)
    print(
        f"bench: creating the {name} venv in {venv} (first run only)", file=sys.stderr, flush=True
    )
    if not python(name).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python(name)), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("--quiet")
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return python(name)


if __name__ == "__main__":
    for venv_name in sys.argv[1:] or list(REQUIREMENTS):
        print(ensure(venv_name, quiet=False))
