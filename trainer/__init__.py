"""The training workload: `mlops train` fits, evaluates, gates and publishes a model."""
