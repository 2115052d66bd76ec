"""cdk-nag (v3) acknowledgments, always with a reason, kept next to the resource they concern.
cdk-nag reports through CDK's policy validation: unacknowledged errors fail `cdk synth`."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def suppress(construct: IConstruct, rule: str, reason: str, findings: list[str] | None = None) -> None:
    """Acknowledge `rule` on `construct` (and its children); with `findings`, only those
    findings of the rule (e.g. IAM5's "Resource::*"), each acknowledged separately."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {rule} needs a real reason")
    for rule_id in [f"{rule}[{f}]" for f in findings] if findings else [rule]:
        Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def render(value) -> str:
    """A resolved CloudFormation value as cdk-nag names it in findings: `<AWS::Partition>`, `<Id.Arn>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{'.'.join(arg) if isinstance(arg, list) else arg}>"
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
    raise ValueError(f"cannot name {value!r} as cdk-nag does")


def wildcard_resource_findings(scope: IConstruct, statements) -> list[str]:
    """IAM5 findings ("Resource::...") for the wildcard resources of these statements."""
    from aws_cdk import Stack

    stack = Stack.of(scope)
    names = [render(stack.resolve(r)) for s in statements for r in s.resources]
    return sorted({f"Resource::{n}" for n in names if "*" in n})
