"""The Helm chart: lint, render, Kubernetes schemas, values schema, CRDs, RBAC, security."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.corpus import CRDS

from .tools import CHART, KUBE_VERSION, NAMESPACE, REPO, by_kind, helm, one, render, template

# helm and kubectl are real processes (built by hack/k8s/build.sh): the component layer.
pytestmark = pytest.mark.component


EVERYTHING: dict[str, Any] = {
    "fullnameOverride": "mlops",
    "commonLabels": {"team": "ml-platform"},
    "image": {"repository": "registry.example/mlops-operator", "digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "registry"}],
    "operator": {
        "watchNamespaces": ["team-a", "team-b"],
        "defaultRouter": "gatewayAPI",
        "routerImage": "registry.example/nginx-unprivileged:1.28.0-alpine",
        "routerReplicas": 3,
        "clusterDomain": "example.internal",
        "extraEstimators": ["xgboost.XGBClassifier"],
        "trainingServiceAccount": "trainer",
        "extraArgs": ["--verbose"],
        "extraEnv": [{"name": "MLOPS_PVC_ROOT", "value": "/stores"}],
        "podLabels": {"sidecar.istio.io/inject": "false"},
        "podAnnotations": {"example/annotation": "yes"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}
                    ]
                }
            }
        },
    },
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "modelStore": {"uri": "s3://models/prod", "persistence": {"existingClaim": "shared-models"}},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "dashboard": {"namespace": "monitoring", "annotations": {"grafana_folder": "MLOps"}},
    "alerts": {"enabled": True, "labels": {"release": "prometheus"}, "minAccuracy": 0.9},
}
MINIMAL: dict[str, Any] = {
    "crds": {"enabled": False},
    "rbac": {"create": False},
    "serviceAccount": {"create": False, "name": "existing"},
    "modelStore": {"persistence": {"enabled": False}},
    "dashboard": {"enabled": False},
    "tests": {"enabled": False},
}
VALUE_SETS = {"defaults": {}, "everything": EVERYTHING, "minimal": MINIMAL}
MONITORING = "monitoring.coreos.com/v1"


def test_helm_lint_is_clean() -> None:
    for values in VALUE_SETS.values():
        args = ["lint", str(CHART), "--strict"]
        for key, value in values.items():
            args.append(f"--set-json={key}={json.dumps(value)}")
        result = helm(*args)
        assert "0 chart(s) failed" in result.stdout
        assert "[WARNING]" not in result.stdout
        assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_objects_are_valid_kubernetes_objects(name: str) -> None:
    objects = render(VALUE_SETS[name])
    assert objects
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == MONITORING:  # the Prometheus Operator's CRDs: not built in
            assert obj["kind"] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, where
            if obj["kind"] == "PrometheusRule":
                rules = [rule for group in obj["spec"]["groups"] for rule in group["rules"]]
                assert all(rule["alert"] and rule["expr"] for rule in rules), where
                assert "< 0.9" in next(r["expr"] for r in rules if "Accuracy" in r["alert"])
            else:
                assert obj["spec"]["selector"]["matchLabels"], where
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")


def test_defaults_render_the_expected_objects() -> None:
    kinds = sorted(obj["kind"] for obj in render())
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Pod",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )


def test_two_replicas_elect_a_leader_and_keep_one_through_a_drain() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e["value"] for e in container(objects)["env"] if "value" in e}
    assert env["MLOPS_LEADER_ELECTION"] == "true"
    assert env["MLOPS_LEADER_ELECTION_NAMESPACE"] == NAMESPACE
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    (role,) = (r for r in by_kind(objects, "Role") if "leader" in r["metadata"]["name"])
    assert role["metadata"]["namespace"] == NAMESPACE
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [env["MLOPS_LEADER_ELECTION_LEASE"]],
            "verbs": ["get", "update"],
        }
    ]
    assert by_kind(render({"operator": {"replicas": 1}}), "PodDisruptionBudget") == []


def test_values_schema_rejects_a_misspelled_key() -> None:
    for typo in (
        "operator.replica=2",
        "crds.keeep=true",
        "imagee.tag=x",
        "metrics.serviceMonitor.enable=true",
    ):
        result = template(extra=[f"--set={typo}"], check=False)
        assert result.returncode != 0, typo
        assert "additional properties" in result.stderr.lower(), result.stderr


def test_values_schema_rejects_bad_values() -> None:
    for bad in (
        "operator.defaultRouter=nginx",
        "image.pullPolicy=Sometimes",
        "image.digest=latest",
        "modelStore.uri=http://models",
        "metrics.port=0",
    ):
        assert template(extra=[f"--set={bad}"], check=False).returncode != 0, bad


def schema_paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    """The documented keys: every property, down into the chart's own (strict) objects."""
    paths = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        if key != "global":
            paths.append(path)
        if child.get("additionalProperties") is False:
            paths += schema_paths(child, f"{path}.")
    return paths


def commented_value_keys(text: str) -> dict[str, bool]:
    """Each key of values.yaml (by dotted path, mapping keys only) -> has a comment above."""
    found: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in text.splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w]*):", line)
        if match:
            indent = len(match.group(1))
            stack = [(i, k) for i, k in stack if i < indent]
            stack.append((indent, match.group(2)))
            found[".".join(k for _, k in stack)] = previous.lstrip().startswith("#")
        if line.strip():
            previous = line
    return found


def test_every_value_is_in_the_schema_and_documented() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = schema_paths(schema)
    comments = commented_value_keys((CHART / "values.yaml").read_text())
    for path in documented:
        node: Any = values
        for part in path.split("."):
            assert part in node, f"{path} is in values.schema.json but not in values.yaml"
            node = node[part]
        assert comments[path], f"{path} has no comment in values.yaml"
    undeclared = [path for path in comments if path.count(".") <= 2 and not declared(schema, path)]
    assert undeclared == []

    def walk(node: dict[str, Any], where: str) -> None:
        assert node.get("description") or where == "", f"{where} has no description"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{where}.{key}")

    walk(schema, "")


def declared(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for part in path.split("."):
        if node.get("additionalProperties") is not False:
            return True  # inside a Kubernetes object (resources, securityContext, ...)
        if part not in node.get("properties", {}):
            return False
        node = node["properties"][part]
    return True


def test_chart_crds_are_a_synced_copy_of_crds() -> None:
    synced = CHART / "files" / "crds"
    assert sorted(p.name for p in synced.glob("*.yaml")) == sorted(
        p.name for p in CRDS.glob("*.yaml")
    )
    for path in CRDS.glob("*.yaml"):
        assert (synced / path.name).read_text() == path.read_text(), (
            f"charts/mlops-operator/files/crds/{path.name} is stale: run hack/sync-generated.sh"
        )


def test_rendered_crds_are_the_committed_ones_with_labels() -> None:
    committed = {
        doc["metadata"]["name"]: doc
        for path in sorted(CRDS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    }
    rendered = {
        obj["metadata"]["name"]: obj for obj in by_kind(render(), "CustomResourceDefinition")
    }
    assert rendered.keys() == committed.keys()
    for name, obj in rendered.items():
        metadata = obj["metadata"]
        assert metadata["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "mlops-operator"
        assert {**obj, "metadata": {"name": name}} == committed[name]


def test_crds_keep_and_enabled_switches() -> None:
    crds = by_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert len(crds) == 2
    assert all("annotations" not in crd["metadata"] for crd in crds)
    assert by_kind(render({"crds": {"enabled": False}}), "CustomResourceDefinition") == []


def test_clusterrole_rules_are_the_rules_file() -> None:
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    role = one(render(), "ClusterRole")
    assert role["rules"] == rules
    template_text = (CHART / "templates" / "operator-clusterrole.yaml").read_text()
    assert '.Files.Get "files/rbac-rules.yaml"' in template_text


def test_rbac_is_least_privilege() -> None:
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    for rule in rules:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
        if "secrets" in rule["resources"]:  # the feedback tokens: created, never read
            assert (rule["resources"], rule["verbs"]) == (["secrets"], ["create"]), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_watch_namespaces_get_roles_only_there() -> None:
    objects = render({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    assert by_kind(objects, "ClusterRoleBinding") == []
    assert by_kind(objects, "ClusterRole") == []
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    roles = [r for r in by_kind(objects, "Role") if r["metadata"]["namespace"] != NAMESPACE]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(r["rules"] == rules for r in roles)
    bindings = by_kind(objects, "RoleBinding")
    bindings = [b for b in bindings if b["metadata"]["namespace"] != NAMESPACE]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    role = roles[0]["metadata"]["name"]
    assert all(
        b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
        for b in bindings
    )
    env = container(objects)["env"]
    assert {"name": "MLOPS_NAMESPACES", "value": "team-a,team-b"} in env


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


def test_operator_pod_is_hardened() -> None:
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = container(objects)
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert main["args"] == ["operator"]
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["securityContext"] == context


def test_operator_settings_come_from_values() -> None:
    env = {e["name"]: e.get("value") for e in container(render(EVERYTHING))["env"]}
    assert env["MLOPS_IMAGE"] == "registry.example/mlops-operator@sha256:" + "a" * 64
    assert env["MLOPS_DEFAULT_ROUTER"] == "gatewayAPI"
    assert env["MLOPS_MODEL_STORE_URI"] == "s3://models/prod"
    assert env["MLOPS_MODEL_STORE_CLAIM"] == "shared-models"
    assert env["MLOPS_EXTRA_ESTIMATORS"] == "xgboost.XGBClassifier"
    assert env["MLOPS_TRAINING_SERVICE_ACCOUNT"] == "trainer"
    assert env["MLOPS_PVC_ROOT"] == "/stores"
    assert env["MLOPS_ROUTER_IMAGE"] == "registry.example/nginx-unprivileged:1.28.0-alpine"
    assert env["MLOPS_ROUTER_REPLICAS"] == "3"
    assert env["MLOPS_CLUSTER_DOMAIN"] == "example.internal"
    defaults = {e["name"]: e.get("value") for e in container(render())["env"]}
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert defaults["MLOPS_IMAGE"] == f"mlops-operator:{app_version}"
    assert defaults["MLOPS_LIVENESS_PORT"] == "8080"
    assert defaults["MLOPS_METRICS_PORT"] == "9090"
    assert "MLOPS_MODEL_STORE_URI" not in defaults


def test_model_store_claim_is_created_and_kept() -> None:
    claim = one(render(), "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    env = {e["name"]: e.get("value") for e in container(render())["env"]}
    assert env["MLOPS_MODEL_STORE_CLAIM"] == claim["metadata"]["name"]
    assert by_kind(render(EVERYTHING), "PersistentVolumeClaim") == []
    watched = render({"operator": {"watchNamespaces": ["team-a", NAMESPACE]}})
    claims = by_kind(watched, "PersistentVolumeClaim")
    assert sorted(c["metadata"]["namespace"] for c in claims) == sorted([NAMESPACE, "team-a"])
    assert {c["metadata"]["name"] for c in claims} == {claim["metadata"]["name"]}


def test_names_are_cut_at_63_characters() -> None:
    long_release = "a-release-name-that-is-53-characters-long-for-a-test"
    for values in ({}, {"fullnameOverride": "x" * 63}):
        for obj in render(values, release=long_release):
            assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
            assert not obj["metadata"]["name"].endswith("-")


def test_release_named_like_the_chart_is_not_repeated() -> None:
    deployment = one(render(release="mlops-operator"), "Deployment")
    assert deployment["metadata"]["name"] == "mlops-operator"


def test_template_files_are_named_component_kind() -> None:
    sources: dict[str, set[str]] = {}
    for values in VALUE_SETS.values():
        text = template(values).stdout
        for chunk in text.split("\n---\n"):
            source = re.search(r"^# Source: mlops-operator/templates/(\S+)$", chunk, re.M)
            doc = yaml.safe_load(chunk)
            if source and doc:
                sources.setdefault(source.group(1), set()).add(doc["kind"].lower())
    templates = {
        str(p.relative_to(CHART / "templates")) for p in (CHART / "templates").rglob("*.yaml")
    }
    assert templates == set(sources), "every template renders with some value set"
    for name, kinds in sources.items():
        component, _, kind = Path(name).stem.rpartition("-")
        assert component, name
        assert kinds == {kind}, f"{name} renders {kinds}"


def test_servicemonitor_and_podmonitor_select_the_metrics() -> None:
    objects = render(EVERYTHING)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    podmonitor = one(objects, "PodMonitor")
    assert podmonitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert by_kind(render(), "ServiceMonitor") == []


def test_dashboard_configmap_holds_the_dashboard() -> None:
    configmap = one(render(EVERYTHING), "ConfigMap")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["mlops-operator.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboards" / "mlops.json").read_text())
    expressions = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    )
    for metric in (
        "mlops_requests_total",
        "mlops_request_duration_seconds_bucket",
        "mlops_canary_weight_percent",
        "mlops_analysis_total",
        "mlops_reconcile_total",
    ):
        assert metric in expressions, metric
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_notes_render() -> None:
    for name, values in VALUE_SETS.items():
        args = ["install", "mlops-operator", str(CHART), f"--namespace={NAMESPACE}"]
        args += [
            "--dry-run=client",
            *(f"--set-json={k}={json.dumps(v)}" for k, v in values.items()),
        ]
        notes = helm(*args).stdout.partition("NOTES:")[2]
        assert "is installed in namespace mlops-system" in notes, name
        assert "kubectl wait --for=jsonpath='{.status.phase}'=Promoted mdep/cancer" in notes
        assert "<no value>" not in notes, name


def test_chart_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version
    assert chart["version"] == chart["appVersion"] == version.group(1)


def test_operator_env_is_operator_settings() -> None:
    from mlops_operator.settings import OperatorSettings

    for values in VALUE_SETS.values():
        env = {e["name"]: e["value"] for e in container(render(values))["env"] if "value" in e}
        fields = {f"MLOPS_{name.upper()}" for name in OperatorSettings.model_fields}
        assert set(env) <= fields, set(env) - fields
        settings = OperatorSettings(**{k[len("MLOPS_") :].lower(): v for k, v in env.items()})
        assert settings.image == env["MLOPS_IMAGE"]


def test_network_policies_name_the_operator_and_prometheus() -> None:
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    objects = render(
        {
            "networkPolicy": {
                "prometheus": {
                    "namespaceSelector": {"kubernetes.io/metadata.name": "monitoring"},
                    "podSelector": {"app.kubernetes.io/name": "prometheus"},
                }
            }
        }
    )
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    peers = json.loads(env["MLOPS_METRICS_FROM"])
    assert peers[1] == prometheus
    operator_peer = peers[0]
    assert operator_peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert "kubernetes.io/metadata.name" in operator_peer["namespaceSelector"]["matchLabels"]
    policy = one(objects, "NetworkPolicy")
    health, metrics = policy["spec"]["ingress"]
    assert "from" not in health
    assert metrics["from"] == [prometheus]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert "from" not in one(render(), "NetworkPolicy")["spec"]["ingress"][1]
