"""Options several `mlops` commands share."""

from __future__ import annotations

from pathlib import Path

import click

manifest_paths = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A manifest file or a directory of them; repeatable.",
)
