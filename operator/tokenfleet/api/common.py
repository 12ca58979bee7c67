"""Types shared by every API version: the base model, durations, conditions, secret references."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        json_schema_extra={"example": "15m"},
    ),
]


# A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity), as controller-gen writes it.
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, json_schema_extra={"example": "500m"})]


# Kubernetes names and labels (k8s.io/apimachinery/pkg/util/validation), checked where the user
# applies them rather than when the operator's create of a child fails.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key ([prefix/]name), or None when it is one."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain (lowercase letters, digits, '-', '.')"
    if not name or len(name) > 63 or not re.fullmatch(_LABEL_NAME, name):
        return (f"label key {key!r}: the name must be 1-63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def parse_duration(value: str) -> float:
    """Seconds in a duration string such as ``90s``, ``15m``, ``1h30m`` or ``500ms``."""
    if not re.fullmatch(DURATION_PATTERN, value or ""):
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d), e.g. 15m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    def to_wire(self) -> dict:
        """The object as the Kubernetes API holds it (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeyRef(ApiModel):
    """A key in a Secret in the same namespace as the resource."""

    name: str = Field(description="Name of the Secret, in the resource's namespace (a DNS subdomain).",
                      min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(description="Key within the Secret whose value is used (letters, digits, '-', '_', '.').",
                     min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A standard metav1.Condition: one aspect of the resource's state."""

    type: str = Field(description="Condition type: Ready, Progressing, Degraded or ScalingConflict.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word that says why, for machines.")
    message: str = Field(default="", description="Human-readable details, with the numbers that matter.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed from."
    )


def now_rfc3339() -> str:
    """The current UTC time in the format Kubernetes uses for timestamps."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
