"""The names of the model server's metrics that the canary analysis reads: a stable interface
between the server (model_server.metrics) and the operator's metrics sources."""

REQUESTS = "mlops_requests"
"""Counter of inference requests answered, by ``code`` (5xx counts as an error)."""
REQUEST_DURATION = "mlops_request_duration_seconds"
"""Histogram of inference latency (the analysis takes its p99)."""
FEEDBACK = "mlops_feedback"
"""Counter of rows with ground truth, by ``outcome`` (correct, incorrect, observed)."""
AGREEMENT = "mlops_reference_agreement"
"""Counter of rows compared with the reference model's prediction (under strategy shadow: the
stable model's), by ``outcome`` (agree, disagree, skipped)."""

SOURCE = "source"
"""The label of REQUESTS, REQUEST_DURATION, FEEDBACK and AGREEMENT that says where the request
came from: ROUTED when it carried the router's proof (ROUTER_HEADER holding the server's
router token), DIRECT otherwise. With the builtin router the analysis counts only ROUTED."""
ROUTED = "router"
DIRECT = "direct"
SOURCES = (ROUTED, DIRECT)
ROUTER_HEADER = "X-Mlops-Router"
"""The request header by which the builtin router proves a request came through it: nginx
sets it from a Secret (and drops a client's own copy); the server compares it with its
--router-token."""
