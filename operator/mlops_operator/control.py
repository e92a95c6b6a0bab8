"""`mlops promote|abort|retry|pause|resume|history|get`: steer and watch a rollout.

The same commands run as the kubectl plugin `kubectl mlops ...`. A command is an annotation
(`mlops.dev/command`) the operator acts on once; the spec, which Git owns, is never edited.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from mlops_operator import kube
from mlops_operator.canary.commands import ANNOTATION, HELP, Verb
from mlops_operator.objects import MODELDEPLOYMENT
from mlops_operator.status import view

namespace_option = click.option(
    "-n", "--namespace", help="The ModelDeployment's namespace (default: the kubeconfig's)."
)


def _namespace(namespace: str | None) -> str:
    return namespace or kube.current_namespace()


def _read(namespace: str, name: str) -> dict[str, Any]:
    try:
        body = kube.get(MODELDEPLOYMENT, namespace, name)
    except kube.KubeError as error:
        raise click.ClickException(str(error)) from None
    if body is None:
        raise click.ClickException(f"modeldeployment {namespace}/{name} not found")
    return body


def send(namespace: str, name: str, verb: Verb) -> str:
    """Leaves the command on the object; the value, with a nonce so it acts once."""
    _read(namespace, name)
    value = f"{verb}/{time.time_ns()}"
    try:
        kube.annotate(MODELDEPLOYMENT, namespace, name, ANNOTATION, value)
    except kube.KubeError as error:
        raise click.ClickException(str(error)) from None
    return value


def _wait_handled(namespace: str, name: str, value: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        control = (_read(namespace, name).get("status") or {}).get("control") or {}
        if control.get("command") == value:
            return str(control.get("message") or "")
        time.sleep(0.5)
    return None


def _command(verb: Verb, doc: str) -> click.Command:
    @click.argument("name")
    @namespace_option
    @click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait (up to --timeout) until the operator has acted on it; print what it did.",
    )
    @click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
    def run(name: str, namespace: str | None, wait: bool, timeout: float) -> None:
        ns = _namespace(namespace)
        value = send(ns, name, verb)
        click.echo(f"modeldeployment {ns}/{name}: {ANNOTATION}={value}")
        if not wait:
            return
        said = _wait_handled(ns, name, value, timeout)
        if said is None:
            raise click.ClickException(f"the operator did not act on it within {timeout:g}s")
        click.echo(said)
        if "ignored" in said:
            sys.exit(1)

    run.__doc__ = doc
    return click.command(verb)(run)


@click.command()
@click.argument("name")
@namespace_option
@click.option("--full", is_flag=True, help=HELP["promote-full"].capitalize() + ".")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the operator.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.pass_context
def promote(  # noqa: PLR0917 (click passes every option)
    ctx: click.Context, name: str, namespace: str | None, full: bool, wait: bool, timeout: float
) -> None:
    """Go to the next step now (after the last: promote); blue-green: switch now."""
    verb: Verb = "promote-full" if full else "promote"
    ctx.invoke(COMMANDS[verb], name=name, namespace=namespace, wait=wait, timeout=timeout)


COMMANDS: dict[Verb, click.Command] = {
    verb: _command(verb, HELP[verb].capitalize() + ".") for verb in HELP
}


@click.command("history")
@click.argument("name")
@namespace_option
def history(name: str, namespace: str | None) -> None:
    """Past rollouts and how each ended (from the status)."""
    click.echo(view.history(_read(_namespace(namespace), name)))


@click.command("get")
@click.argument("name")
@namespace_option
@click.option("-w", "--watch", is_flag=True, help="Keep the view live until interrupted.")
@click.option("--every", type=float, default=1.0, show_default=True, help="Seconds between reads.")
def get(name: str, namespace: str | None, watch: bool, every: float) -> None:
    """A rollout: variants, weights, the analysis of each interval, conditions."""
    ns = _namespace(namespace)
    if not watch:
        click.echo(view.render(_read(ns, name)))
        return
    live(lambda: kube.get(MODELDEPLOYMENT, ns, name), f"{ns}/{name}", every, click.echo)


def live(
    read: Callable[[], dict[str, Any] | None],
    name: str,
    every: float,
    echo: Callable[[str], None],
) -> None:
    """Redraws the view whenever the object changes, keeping each judged interval."""
    intervals: list[tuple[str, ...]] = []
    shown = None
    while True:
        try:
            body = read()
        except kube.KubeError as error:
            body, text = None, f"modeldeployment {name}: {error}"
        else:
            text = f"modeldeployment {name} not found (yet)"
        if body is not None:
            row = view.interval(body.get("status") or {})
            if row is not None and (not intervals or intervals[-1] != row):
                intervals.append(row)
            text = view.render(body, intervals)
        if text != shown:
            echo("\x1b[H\x1b[2J" + text + f"\n\n(watching every {every:g}s; Ctrl-C to stop)")
            shown = text
        time.sleep(every)


def register(group: click.Group) -> None:
    group.add_command(promote)
    for verb, command in COMMANDS.items():
        if verb not in {"promote-full", "promote"}:
            group.add_command(command)
    group.add_command(history)
    group.add_command(get)
