"""The base of every API model: camelCase on the wire, no unknown fields, paired rules.

A cross-field rule is declared once as a :class:`Rule`: its CEL expression goes into the CRD
(so the API server rejects a bad object) and its Python check runs in the model validator
(so the local runner and the trainer reject the same object), both with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


@dataclass(frozen=True)
class Rule:
    """A validation rule, in CEL for the API server and in Python for everything else.

    ``check`` is None for transition rules (they compare with ``oldSelf``, which only the API
    server knows).
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None
    field_path: str | None = None

    def schema(self) -> dict[str, str]:
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def defaulted(model: type[BaseModel]) -> Any:
    """A nested model field that defaults to the model's defaults, in Python and in the CRD."""
    return Field(default_factory=model, json_schema_extra={"default": {}})


def _add_rules(schema: dict[str, Any], cls: type[ApiModel]) -> None:
    rules = cls.__dict__.get("rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.schema() for rule in rules]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra=_add_rules,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).__dict__.get("rules", ()):
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self

    def dump(self) -> dict[str, Any]:
        """The object as it appears in a manifest: camelCase, without unset fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
