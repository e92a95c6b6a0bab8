"""The Gateway API and Istio CRDs from the build cache install into the test API server."""

from __future__ import annotations

import pytest
import yaml

from .harness import Cluster, crd_established, wait_for


@pytest.mark.parametrize("source", ["gateway-api", "istio"])
def test_cached_crds_install_and_become_established(cluster: Cluster, source: str) -> None:
    if cluster.cache is None:
        pytest.skip("no build cache: run hack/k8s/build.sh")
    paths = sorted((cluster.cache / "crds" / source).glob("*.yaml"))
    assert paths, f"no {source} CRDs in {cluster.cache}"
    cluster.apply_files(*paths)
    names = [
        doc["metadata"]["name"]
        for path in paths
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "CustomResourceDefinition"
    ]
    for name in names:
        wait_for(f"CRD {name} Established", lambda name=name: crd_established(cluster.api, name))
