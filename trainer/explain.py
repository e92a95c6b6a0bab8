"""Global SHAP importance: the mean |attribution| of each input feature on held-out rows.

The same explainer the model server uses (:mod:`model_server.explain`), on at most
:data:`ROWS` test rows (:data:`AGNOSTIC_ROWS` for the model-agnostic explainer), so it stays
a small part of a run. Stored in metadata.json beside the permutation importance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from model_server.artifact import Metadata
from model_server.explain import Explainer, ExplainError

ROWS = 200
AGNOSTIC_ROWS = 20
SAMPLES = 100


def shap_importance(
    pipeline: Any, metadata: Metadata, x: pd.DataFrame, seed: int
) -> tuple[dict[str, Any] | None, str | None]:
    """({method, rows, importance: {feature: mean |shap|}} most important first, None) or
    (None, why it could not be computed)."""
    try:
        explainer = Explainer(pipeline, metadata, samples=SAMPLES, warm=False)
    except ExplainError as error:
        return None, f"no SHAP importance: {error}"
    rows = AGNOSTIC_ROWS if explainer.method == "permutation" else ROWS
    if len(x) > rows:
        x = x.sample(rows, random_state=seed)
    explanation = explainer.explain(x)
    magnitude = np.abs(explanation.values).mean(axis=(0, 2))
    ranked = sorted(
        zip(explanation.features, magnitude.tolist(), strict=True), key=lambda i: (-i[1], i[0])
    )
    return {
        "method": explanation.method,
        "output": explanation.output,
        "rows": len(x),
        "importance": {name: round(value, 6) for name, value in ranked},
    }, None
