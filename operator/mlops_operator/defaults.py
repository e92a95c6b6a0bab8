"""The operator's defaults, in one place: the settings and the builders' options read them."""

from __future__ import annotations

from typing import Literal

from model_server.store import DEFAULT_PVC_ROOT

IMAGE = "mlops-operator:0.1.0"
"""The project's image: the operator, the training Pods and the model servers run it."""
ROUTER_IMAGE = "nginxinc/nginx-unprivileged:1.28.0-alpine"
"""An unprivileged nginx for the builtin router (port 8080, writes only to /tmp)."""
ROUTER_REPLICAS = 2
ROUTER_RUN_AS = 101
"""The nginx-unprivileged image's user."""
RUN_AS = 65532
"""The non-root user (and group) of training and model-server Pods."""
CLUSTER_DOMAIN = "cluster.local"
PVC_ROOT = DEFAULT_PVC_ROOT
"""Where Pods mount the claims of pvc:// URIs: <root>/<claim>."""
IMAGE_PULL_POLICY: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
PROMETHEUS_SELECTOR = 'namespace="{namespace}",model="{name}",variant="{variant}"'
"""Which Prometheus series belong to a variant; {namespace}, {name} (the ModelDeployment, which
is the served model name) and {variant} are filled in."""
LEASE_DURATION = 15.0
"""Leader election (client-go's defaults): seconds a lease holds unrenewed; a standby takes
over this long after the leader's last renewal."""
LEASE_RENEW_DEADLINE = 10.0
"""Seconds the leader keeps failing to renew before it stops acting (less than the duration)."""
LEASE_RETRY = 2.0
"""Seconds between tries to take or renew the lease."""
