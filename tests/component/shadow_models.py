"""Three iris models for shadow tests: stable; a shadow trained on the same data, less
regularized (it agrees with stable on nearly every input); one trained on shuffled labels (it
agrees about as often as chance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_server.testing import write_artifact


@dataclass
class Models:
    root: Path
    artifacts: dict[str, tuple[str, str]]
    """(uri, digest) by name: stable, agreeing, shuffled."""
    fitted: dict[str, Any]
    frame: Any


def fit_shadow_models(root: Path) -> Models:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    shuffled = target.sample(frac=1.0, random_state=7).to_numpy()
    fitted = {
        "stable": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "agreeing": make_pipeline(StandardScaler(), LogisticRegression(C=3.0, max_iter=1000)),
        "shuffled": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }
    labels = {"stable": target, "agreeing": target, "shuffled": shuffled}
    artifacts = {}
    for name, estimator in fitted.items():
        digest = write_artifact(root / name, estimator, frame, labels[name], name="iris")
        artifacts[name] = (str(root / name), digest)
    return Models(root, artifacts, fitted, frame)


def reference_env(models: Models) -> dict[str, str]:
    """What the operator gives a shadow's servers: the stable model as their reference."""
    uri, digest = models.artifacts["stable"]
    return {"MLOPS_REFERENCE_MODEL_URI": uri, "MLOPS_REFERENCE_MODEL_DIGEST": digest}


MIN_AGREEMENT = 0.9
SHADOWS = ("agreeing", "shuffled")


def shadow_deployment(name: str, model: Callable[[str], dict[str, str]]) -> dict[str, Any]:
    """A ModelDeployment that judges the shadow ``name`` against the stable model on its
    agreement; ``model(which)`` is the spec.model of stable and of each shadow."""
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "stable": {"model": model("stable")},
            "canary": {"model": model(name)},
            "strategy": "shadow",
            "traffic": {"interval": "2s"},
            "analysis": {
                "minRequests": 20,
                "maxErrorRateIncrease": 0.01,
                "maxLatencyP99Ratio": 50,  # a shared 2-core machine: a sanity bound only
                "minAgreement": MIN_AGREEMENT,
                "failureLimit": 2,
            },
        },
    }
