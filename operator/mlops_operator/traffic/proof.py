"""The builtin router's proof to the model servers that a request came through it. Pure.

The operator generates a token per ModelDeployment and keeps it in the Secret
``<name>-router-token`` (never in the router's ConfigMap: ConfigMaps are widely readable):

- key ``token``: the model servers' ``MLOPS_ROUTER_TOKEN``;
- key ``proxy-headers.conf``: the nginx snippet :func:`snippet` renders from it, mounted into
  the router Pods and included by the rendered nginx.conf wherever it proxies (nginx sets the
  header itself, so a client's own copy never reaches a server).

A server labels a request ``source="router"`` only when the header holds its token
(model_server.provenance); with the builtin router the analysis counts only those.
"""

from __future__ import annotations

import re

from model_server.metric_names import ROUTER_HEADER

TOKEN_KEY = "token"
SNIPPET_KEY = "proxy-headers.conf"
SNIPPET_DIR = "/etc/nginx/mlops-router"
"""Where the router Pods mount the Secret (read-only)."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
"""What secrets.token_urlsafe gives: nothing nginx would read as syntax."""


def snippet(token: str) -> str:
    """The nginx directive that sends the proof to the upstream servers."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("a router token is at least 16 of A-Z, a-z, 0-9, '_' and '-'")
    return f'proxy_set_header {ROUTER_HEADER} "{token}";\n'


def cleared() -> str:
    """The directive that drops a client's copy of the header (nothing is proved)."""
    return f'proxy_set_header {ROUTER_HEADER} "";'
