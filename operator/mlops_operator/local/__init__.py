"""The local runner: TrainingJob and ModelDeployment manifests on one machine, no cluster.

Training runs `mlops train` as subprocesses into a local model store; each variant's model
server runs `mlops serve` on a free port; nginx routes with the configuration the operator
renders; the operator's canary state machine drives the rollout from the servers' metrics.
"""
