"""Manual rollout control: the command a person (or `mlops promote`) leaves on the object.

A command is an annotation, never a spec field: the spec is what Git (and Argo CD) owns, and
editing it would bump the generation and be reverted by a self-heal. The value is
``<verb>`` or ``<verb>/<nonce>``; the controller records the value it handled in
``status.control.command``, so each value acts once and a new nonce repeats a verb. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ANNOTATION = "mlops.dev/command"
Verb = Literal["promote", "promote-full", "abort", "retry", "pause", "resume"]
VERBS: tuple[Verb, ...] = get_args(Verb)
HELP: dict[Verb, str] = {
    "promote": "go to the next step now (promote after the last); blue-green: switch now",
    "promote-full": "promote now, skipping the remaining steps and analyses",
    "abort": "roll the canary back now",
    "retry": "start a rolled-back rollout of the same model again",
    "pause": "hold the rollout where it is until resumed",
    "resume": "carry on after a pause",
}


class CommandError(ValueError):
    """An annotation value that is no command."""


@dataclass(frozen=True)
class Command:
    verb: Verb
    value: str
    """The annotation's whole value, recorded once handled."""


def parse(value: str) -> Command:
    verb = value.split("/", 1)[0].strip()
    if verb not in VERBS:
        raise CommandError(
            f"annotation {ANNOTATION}={value!r}: {verb!r} is not one of {', '.join(VERBS)}"
        )
    return Command(verb, value)


def pending(annotations: dict[str, str] | None, handled: str | None) -> Command | None:
    """The command to act on now: the annotation, unless its value was handled already.

    Raises CommandError for a value that is no command (and was not reported yet)."""
    value = (annotations or {}).get(ANNOTATION)
    if not value or value == handled:
        return None
    return parse(value)
