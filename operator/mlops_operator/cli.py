"""The `mlops` command line: one entrypoint for the operator, the workloads and the user."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlops_operator import crd, manifests
from mlops_operator.api.workload import (
    LOG_FORMAT_ENV,
    NAME_ENV,
    NAMESPACE_ENV,
    SPEC_ENV,
    STORE_ENV,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    VERSION_ENV,
    WORKER_INDEX_ENV,
)
from mlops_operator.cli_options import manifest_paths


@click.group()
@click.version_option(package_name="mlops-operator")
def main() -> None:
    """Train scikit-learn models and roll them out safely, on Kubernetes or on this machine."""


@main.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per CRD here instead of printing them.",
)
def crds(output_dir: Path | None) -> None:
    """Print the CustomResourceDefinitions generated from the API models."""
    if output_dir is None:
        click.echo("---\n".join(crd.render(resource) for resource in crd.RESOURCES), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for resource in crd.RESOURCES:
        (output_dir / crd.filename(resource)).write_text(crd.render(resource))
        click.echo(f"wrote {output_dir / crd.filename(resource)}")


@main.command()
@manifest_paths
def validate(paths: tuple[Path, ...]) -> None:
    """Check TrainingJob and ModelDeployment manifests without a cluster.

    Beyond what the API server checks: a TrainingJob's estimator and its parameters, and
    its data when it is reachable from here (a local file, pvc:// under $MLOPS_PVC_ROOT).
    """
    try:
        resources = manifests.load(paths)
    except manifests.ManifestError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    failed = False
    for resource in resources:
        name = f"{resource.kind.lower()}/{resource.metadata.name}"
        problems = _preflight(resource)
        for problem in problems:
            click.echo(f"error: {name}: {problem}", err=True)
        failed = failed or bool(problems)
        if not problems:
            click.echo(f"{name} valid")
    sys.exit(1 if failed else 0)


def _preflight(resource: manifests.Resource) -> list[str]:
    if resource.kind != "TrainingJob":
        return []
    from trainer import preflight  # imports scikit-learn: only when there is one to check

    return preflight.problems(resource.spec)


@main.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch this namespace (repeatable); default: $MLOPS_NAMESPACES, else all namespaces.",
)
@click.option("--liveness-port", type=int, help="Port of /healthz (default $MLOPS_LIVENESS_PORT).")
@click.option("--metrics-port", type=int, help="Port of /metrics (default $MLOPS_METRICS_PORT).")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def operator(
    namespaces: tuple[str, ...],
    liveness_port: int | None,
    metrics_port: int | None,
    verbose: bool,
) -> None:
    """Run the operator: reconcile TrainingJobs and ModelDeployments until stopped.

    Settings come from MLOPS_* environment variables (see docs/trainingjob.md); the
    options here override them. Credentials: in-cluster, else $KUBECONFIG.
    """
    from mlops_operator import settings as settings_module

    overrides: dict[str, object] = {}
    if namespaces:
        overrides["namespaces"] = list(namespaces)
    if liveness_port is not None:
        overrides["liveness_port"] = liveness_port
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    current = settings_module.get_settings()
    if overrides:
        current = settings_module.OperatorSettings(**{**current.model_dump(), **overrides})
        settings_module.use(current)
    import kopf

    # kopf's log format, with [namespace/name] before the messages about an object
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)
    from mlops_operator import operator as operator_module

    operator_module.run(current)


@main.command()
@click.option(
    "-f",
    "--filename",
    "manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A TrainingJob manifest (YAML) to train.",
)
@click.option(
    "--spec-json",
    envvar=SPEC_ENV,
    help=f"The TrainingJob's spec as JSON (or a whole TrainingJob). [env {SPEC_ENV}]",
)
@click.option(
    "--name",
    envvar=NAME_ENV,
    help=f"The TrainingJob's name (default: the manifest's). [env {NAME_ENV}]",
)
@click.option(
    "--namespace",
    envvar=NAMESPACE_ENV,
    help=f"Its namespace (default: the manifest's, else default). [env {NAMESPACE_ENV}]",
)
@click.option(
    "--store",
    envvar=STORE_ENV,
    help="The model store URI: file://, pvc://<claim>/<path>, s3://... "
    f"(default: spec.output.uri). [env {STORE_ENV}]",
)
@click.option(
    "--version",
    "version",
    envvar=VERSION_ENV,
    help=f"The version to publish (default: <UTC yyyymmdd-hhmmss>-<4 hex>). [env {VERSION_ENV}]",
)
@click.option(
    "--termination-log",
    envvar=TERMINATION_LOG_ENV,
    help=f"Where the result JSON (<= 4 KiB) goes (default: {TERMINATION_LOG}, written "
    f"only if it exists). [env {TERMINATION_LOG_ENV}]",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar=LOG_FORMAT_ENV,
    show_default=True,
    help="Progress lines (stderr) and summary (stdout) as text or JSON lines. "
    f"[env {LOG_FORMAT_ENV}]",
)
@click.option(
    "--worker-index",
    "worker",
    type=click.IntRange(min=0),
    default=0,
    envvar=WORKER_INDEX_ENV,
    show_default=True,
    help="Which worker of a parallel search this is (search.parallelism; 0 publishes). "
    f"[env {WORKER_INDEX_ENV}, set by the Indexed Job]",
)
def train(  # noqa: PLR0917 (click passes every option)
    manifest: Path | None,
    spec_json: str | None,
    name: str | None,
    namespace: str | None,
    store: str | None,
    version: str | None,
    termination_log: str | None,
    log_format: str,
    worker: int,
) -> None:
    """Train, evaluate, gate and publish the model of a TrainingJob (docs/trainer.md)."""
    from trainer.main import main as run_train

    sys.exit(
        run_train(
            manifest=manifest,
            spec_json=spec_json,
            name=name,
            namespace=namespace,
            store=store,
            version=version,
            termination_log=termination_log,
            log_format=log_format,
            worker=worker,
        )
    )


@main.command()
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True, help="With a name.")
@click.option("--open", "open_it", is_flag=True, help="Open it in the web browser.")
def report(target: str, namespace: str, open_it: bool) -> None:
    """Print the path of a run's HTML report (or open it).

    TARGET is the report's URI (status.report of a TrainingJob), an artifact directory
    (file://, pvc://, s3:// or a path), or the name of a TrainingJob trained by the local
    runner (its newest run).
    """
    from mlops_operator.local.home import Home, default_home
    from mlops_operator.reports import ReportNotFound, locate

    try:
        path = locate(target, namespace, Home(default_home()).models)
    except ReportNotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(path))
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())


from mlops_operator import control  # noqa: E402
from mlops_operator.local.cli import local  # noqa: E402
from model_server.cli import serve  # noqa: E402

main.add_command(local)
main.add_command(serve)
control.register(main)
