"""The `mlops` command line."""

import click


@click.group()
@click.version_option(package_name="mlops-operator")
def main() -> None:
    """Train scikit-learn models and roll them out safely, on Kubernetes or on this machine."""
