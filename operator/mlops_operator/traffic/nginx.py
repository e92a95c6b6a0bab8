"""The nginx configuration of the builtin router, rendered by pure code.

- weighted split: ``split_clients`` on ``$request_id`` (a random key per request);
- sticky A/B: ``split_clients`` on a header or cookie value (requests without one fall back
  to the random key), so a key always lands on the same variant;
- ``x-mlops-variant: stable|canary`` forces a variant;
- shadow: ``mirror`` copies each request (with its body) to the canary and drops the answer;
- feedback: sent to the variant that remembers the request id (tried in turn, a 404 moves
  on), and in shadow copied to the canary too, so each variant's online accuracy counts;
  servers a promotion or rollback just retired still get it, for what they predicted;
- fallback: a prediction nginx cannot get an answer to (a refused connection, an upstream
  gone mid-request: nginx's own 502) is sent to the stable servers once, and says so in
  ``x-mlops-served-by``; a canary Pod restarting, or a NetworkPolicy enforcer that does not
  know a new router Pod yet, costs the client nothing (the real-node quickstart saw one 502
  of a router Pod just started that reached the stable servers but not yet the canary's);
- the proof (traffic.proof): every proxied request, mirrored ones too, carries the header
  ``X-Mlops-Router`` from the included snippet file (a Secret, never this configuration);
  a client's own copy is always overwritten, or dropped when there is no snippet.

The same renderer serves the router Pod (nginx-unprivileged, read-only root filesystem) and the
local runner (the nginx binary, a temporary prefix).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlops_operator.traffic.proof import cleared
from mlops_operator.traffic.split import VARIANT_HEADER, Split

HEALTH_PATH = "/mlops-router/healthz"
READY_PATH = "/mlops-router/ready"
"""Ready once the stable servers answer through this router: a new router Pod takes clients
only once its connections get through (the NetworkPolicy enforcer may not know its address
yet: the real-node soak counted 502s from router Pods just started)."""
FEEDBACK_PATH = "^/v2/models/[^/]+(/versions/[^/]+)?/feedback$"
FALLBACK_LOCATION = "@mlops_stable_fallback"
"""Feedback reaches the variant that made the prediction, without the client naming it."""
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class NginxConfig:
    split: Split
    stable: Sequence[str]
    """Upstream servers of the stable variant, host:port (a Service DNS name in a cluster)."""
    canary: Sequence[str] = ()
    retired: Sequence[str] = ()
    """Servers of a variant just replaced (a promotion, a rollback) that have not stopped
    yet: no prediction goes to them, but feedback still does (tried with the live servers,
    a 404 moves on), so a prediction made just before the switch keeps its feedback."""
    listen: str = "8080"
    """A port, or address:port."""
    runtime_dir: str = "/tmp"
    """Writable directory for the pid file and temporary files."""
    error_log: str = "/dev/stderr"
    access_log: str | None = None
    worker_processes: str = "auto"
    user: str | None = None
    """Only when nginx starts as root (workers switch to this user)."""
    salt: str = ""
    """Mixed into the sticky hash, so two deployments split the same keys independently."""
    extra_upstream_options: Sequence[str] = field(default=("keepalive 32",))
    proof: str | None = None
    """The snippet file (traffic.proof.snippet) that sets the router's proof header, included
    where nginx proxies; None: no proof, the header is only dropped."""
    client_keepalive: bool = True
    """Keep clients' connections open between requests. Off, every answer closes its
    connection: a reload (SIGHUP closes idle keep-alive connections, racing a client's next
    request on them) then loses no request of a client that never retries (the local runner)."""


KEEPALIVE_TIME_SECONDS = 5
"""A client connection is closed after its answer (Connection: close) once this old, so
steady clients move off a terminating router Pod by themselves: its preStop pause is longer."""


def _key_variable(config: NginxConfig) -> str:
    sticky = config.split.sticky
    if sticky is None:
        return "$request_id"
    if not _NAME.match(sticky.name):
        raise ValueError(f"sticky {sticky.kind} name {sticky.name!r} has unexpected characters")
    name = sticky.name.lower().replace("-", "_")
    return f"$http_{name}" if sticky.kind == "header" else f"$cookie_{sticky.name}"


def _upstream(name: str, servers: Sequence[str], options: Sequence[str]) -> list[str]:
    if not servers:
        raise ValueError(f"the {name} variant needs at least one upstream server")
    lines = [f"    upstream mlops_{name} {{"]
    lines += [f"        server {server};" for server in servers]
    lines += [f"        {option};" for option in options]
    lines.append("    }")
    return lines


def _percent(weight: int) -> str:
    return f"{weight}%"


def render(config: NginxConfig) -> str:
    """The complete nginx.conf."""
    split = config.split
    if split.canary and not config.canary:
        raise ValueError("a split with a canary needs canary upstream servers")
    run = config.runtime_dir.rstrip("/") or "/"
    header_var = "$http_" + split.override_header.lower().replace("-", "_")
    proof = f"include {config.proof};" if config.proof else cleared()
    key = _key_variable(config)
    lines: list[str] = []
    if config.user:
        lines.append(f"user {config.user};")
    lines += [
        f"worker_processes {config.worker_processes};",
        f"pid {run}/nginx.pid;",
        f"error_log {config.error_log} warn;",
        "",
        "events {",
        "    worker_connections 4096;",
        "}",
        "",
        "http {",
        f"    client_body_temp_path {run}/client_temp;",
        f"    proxy_temp_path {run}/proxy_temp;",
        f"    fastcgi_temp_path {run}/fastcgi_temp;",
        f"    uwsgi_temp_path {run}/uwsgi_temp;",
        f"    scgi_temp_path {run}/scgi_temp;",
        "    server_tokens off;",
        "    client_max_body_size 16m;",
        f"    keepalive_timeout {'65s' if config.client_keepalive else '0'};",
        f"    keepalive_time {KEEPALIVE_TIME_SECONDS}s;",
        f"    access_log {config.access_log or 'off'};",
        "",
    ]
    lines += _upstream("stable", config.stable, config.extra_upstream_options)
    if split.canary:
        lines += _upstream("canary", config.canary, config.extra_upstream_options)
    live_split = split.canary and not split.mirror
    pooled = live_split or bool(config.retired)
    if pooled:
        # Feedback goes to whichever server remembers the request id: the others answer 404.
        live = [*config.stable, *(config.canary if live_split else ())]
        lines += _upstream("either", [*live, *config.retired], config.extra_upstream_options)
    lines.append("")
    # The variant a request gets: the split, unless the override header names one.
    if split.sticky is not None:
        lines += [
            f"    map {key} $mlops_key {{",
            '        "" $request_id;',
            f"        default {key};",
            "    }",
        ]
        hashed = f'"{config.salt}$mlops_key"'
    else:
        hashed = f'"{config.salt}$request_id"'
    live_canary = split.canary and not split.mirror and split.canary_weight > 0
    if live_canary and split.canary_weight < 100:
        lines += [
            f"    split_clients {hashed} $mlops_split {{",
            f"        {_percent(split.canary_weight)} canary;",
            "        * stable;",
            "    }",
        ]
    else:
        default = "canary" if live_canary else "stable"
        lines += ["    map $request_id $mlops_split {", f"        default {default};", "    }"]
    forced = ["        stable stable;"]
    if split.canary:
        forced.append("        canary canary;")
    lines += [
        f"    map {header_var} $mlops_variant {{",
        *forced,
        "        default $mlops_split;",
        "    }",
        f"    map {header_var} $mlops_feedback {{",
        *forced,
        f"        default {'either' if pooled else 'stable'};",
        "    }",
        "",
        "    server {",
        f"        listen {config.listen};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Request-Id $request_id;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"        {proof}",
        "        proxy_next_upstream error timeout;",
        f"        add_header {VARIANT_HEADER} $mlops_variant always;",
        "",
        f"        location = {HEALTH_PATH} {{",
        "            access_log off;",
        '            return 200 "ok\\n";',
        "        }",
        "",
        f"        location = {READY_PATH} {{",
        "            access_log off;",
        "            proxy_connect_timeout 2s;",
        "            proxy_read_timeout 2s;",
        "            proxy_pass http://mlops_stable/v2/health/ready;",
        "        }",
        "",
        f"        location ~ {FEEDBACK_PATH} {{",
        "            proxy_next_upstream error timeout http_404 non_idempotent;",
    ]
    if split.mirror:
        lines += ["            mirror /_mlops_mirror;", "            mirror_request_body on;"]
    lines += [
        "            proxy_pass http://mlops_$mlops_feedback;",
        "        }",
        "",
        "        location / {",
    ]
    if split.mirror:
        lines += ["            mirror /_mlops_mirror;", "            mirror_request_body on;"]
    lines += [
        f"            error_page 502 = {FALLBACK_LOCATION};",
        "            proxy_pass http://mlops_$mlops_variant;",
        "        }",
        "",
        f"        location {FALLBACK_LOCATION} {{",
        f"            add_header {VARIANT_HEADER} stable always;",
        "            proxy_pass http://mlops_stable;",
        "        }",
    ]
    if split.mirror:
        lines += [
            "",
            "        location = /_mlops_mirror {",
            "            internal;",
            "            proxy_set_header X-Mlops-Mirrored 1;",
            f"            {proof}",
            "            proxy_connect_timeout 2s;",
            "            proxy_read_timeout 10s;",
            "            proxy_pass http://mlops_canary$request_uri;",
            "        }",
        ]
    lines += ["    }", "}", ""]
    return "\n".join(lines)


def checksum(text: str) -> str:
    """The configuration's digest: a Pod template annotation, so a change rolls the router."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
