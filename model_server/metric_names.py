"""The names of the model server's metrics that the canary analysis reads: a stable interface
between the server (model_server.metrics) and the operator's metrics sources."""

REQUESTS = "mlops_requests"
"""Counter of inference requests answered, by ``code`` (5xx counts as an error)."""
REQUEST_DURATION = "mlops_request_duration_seconds"
"""Histogram of inference latency (the analysis takes its p99)."""
FEEDBACK = "mlops_feedback"
"""Counter of rows with ground truth, by ``outcome`` (correct, incorrect, observed)."""
