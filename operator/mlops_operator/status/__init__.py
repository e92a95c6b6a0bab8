"""Status computation: pure functions from observed objects to a resource's status."""
