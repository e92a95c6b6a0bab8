"""What `mlops validate` can check of a TrainingJob without a cluster, beyond its schema: the
estimator and its parameters (with a did-you-mean), and the data when it is reachable from
here (a local file, or a pvc:// claim whose directory exists under $MLOPS_PVC_ROOT; a claim
that is not mounted here is left to the cluster). The messages are the trainer's
own, so `validate` says what a training run would."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from urllib.parse import urlsplit

from mlops_operator.api.trainingjob import TrainingJobSpec
from model_server import store
from trainer import data, estimators
from trainer.errors import DataUnreadableError, TrainerError


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@functools.cache
def _public_estimators() -> tuple[str, ...]:
    """Every public scikit-learn classifier and regressor, by its public import path."""
    from sklearn.utils import all_estimators

    paths = []
    for name, cls in all_estimators(type_filter=["classifier", "regressor"]):
        public = [part for part in cls.__module__.split(".") if not part.startswith("_")]
        paths.append(".".join([*public, name]))
    return tuple(sorted(paths))


def _estimator(spec: TrainingJobSpec) -> list[str]:
    path = spec.model.estimator
    try:
        cls = estimators.resolve(path)
    except TrainerError as error:
        return [f"spec.model.estimator: {error}{_suggest(path, _public_estimators())}"]
    valid = sorted(cls().get_params(deep=False))
    problems = []
    named = [("spec.model.params", spec.model.params)]
    if spec.search is not None:
        named.append(("spec.search.params", spec.search.params))
    for where, params in named:
        for param in sorted(set(params) - set(valid)):
            problems.append(
                f"{where}.{param}: not a parameter of {cls.__name__}{_suggest(param, valid)}; "
                f"valid: {', '.join(valid)}"
            )
    return problems


def _data(spec: TrainingJobSpec) -> list[str]:
    uri = spec.dataset.uri
    if uri is None:
        return []
    try:
        path = store.local_path(uri)
        if path is None:
            return []  # s3://, http(s)://: checked by the training run, with its credentials
        if uri.startswith("pvc://") and not (store.pvc_root() / urlsplit(uri).netloc).is_dir():
            return []  # the claim is not mounted here: it is read in the cluster
        data.load(spec.dataset, spec.preprocessing.categorical_columns)
    except DataUnreadableError as error:
        return [f"spec.dataset.uri: {error}"]
    except (TrainerError, store.StoreError) as error:
        return [f"spec.dataset: {error}"]
    return []


def problems(spec: TrainingJobSpec) -> list[str]:
    """Each problem, as one line naming the field."""
    return [*_estimator(spec), *_data(spec)]
