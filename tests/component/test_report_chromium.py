"""The run's HTML report in a real browser: headless Chromium (Debian's) renders its plots."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.main import main

pytestmark = pytest.mark.component

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAR_BLUE = (0x3B, 0x75, 0xAF)
"""The bars' colour (trainer/htmlreport/plots.py): present only where the plots rendered."""
SECTIONS = ("metrics", "evaluation", "importance", "data", "search")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("report")
    spec = {
        "dataset": {"builtin": "breast_cancer"},
        "model": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 20},
        },
        "search": {"params": {"max_depth": [3, 6]}, "cv": 3},
    }
    code = main(
        spec_json=json.dumps(spec),
        name="cancer",
        store=f"file://{home / 'store'}",
        version="v1",
        termination_log=str(home / "result.json"),
        out=io.StringIO(),
    )
    result = json.loads((home / "result.json").read_text())
    assert code == 0, result
    assert result["report"] == f"file://{home}/store/default/cancer/v1/report.html"
    return home / "store/default/cancer/v1/report.html"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "Debian's chromium is installed by hack/setup.sh"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_page_has_its_sections_and_nothing_from_the_network(report: Path) -> None:
    dom = chromium("--dump-dom", report.as_uri()).stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', dom)
    assert set(alts) >= {"confusion", "ROC curve", "precision-recall curve", "perm", "shap"}
    assert "accuracy" in dom
    assert "No column looks like personal data." in dom
    assert not re.search(r'(src|href)="(https?:)?//', dom)  # self-contained


def test_every_inline_image_has_a_picture(report: Path) -> None:
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', report.read_text()):
        image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        colours = image.getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20, "a blank image"


def test_a_screenshot_shows_the_plots(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium("--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    pixels = np.asarray(image).reshape(-1, 3)
    assert (pixels == BAR_BLUE).all(axis=1).sum() > 5000  # the importance bars rendered
    white = (pixels == 255).all(axis=1).sum()
    assert white < 0.95 * len(pixels)


def test_mlops_report_prints_its_path(report: Path) -> None:
    mlops = str(Path(sys.executable).with_name("mlops"))
    printed = subprocess.run(
        [mlops, "report", str(report.parent)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == str(report)
    missing = subprocess.run(
        [mlops, "report", "nosuchjob"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert "no report of TrainingJob default/nosuchjob" in missing.stderr
