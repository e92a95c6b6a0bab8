"""`mlops serve`: one flag per ServerSettings field, so the settings stay the single source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import click
from pydantic import ValidationError

from model_server.settings import ServerSettings


def _option(name: str, field: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    flag = name.replace("_", "-")
    kinds = [kind for kind in (field.annotation, *get_args(field.annotation)) if kind is not None]
    help_text = f"{field.description} [env MLOPS_{name.upper()}]"
    if bool in kinds:
        return click.option(f"--{flag}/--no-{flag}", default=None, help=help_text)
    if get_origin(field.annotation) is Literal:
        choices = click.Choice([str(v) for v in get_args(field.annotation)])
        return click.option(f"--{flag}", type=choices, default=None, help=help_text)
    kind = next((k for k in kinds if k in (int, float)), str)
    return click.option(f"--{flag}", type=kind, default=None, help=help_text)


def settings_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for name, field in reversed(ServerSettings.model_fields.items()):
        function = _option(name, field)(function)
    return function


@click.command()
@settings_options
def serve(**options: Any) -> None:
    """Serve a verified model artifact over the Open Inference Protocol v2.

    Every flag can also be set as an environment variable MLOPS_<FLAG> (e.g.
    MLOPS_MODEL_URI); flags win. See docs/model-server.md.
    """
    from model_server.server import run

    try:
        settings = ServerSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise click.UsageError(problems) from None
    raise SystemExit(run(settings))
