"""The deploy gate's checks of one packaged state machine definition, as Step Functions would make
them when CloudFormation creates the machine.

A definition is checked as `sam package` uploads it (the file as written) together with the
`DefinitionSubstitutions` of its transformed `AWS::StepFunctions::StateMachine`: no YAML anchors
or aliases, state names unique across the whole machine, every `${Placeholder}` filled, valid ASL
(statelint, the Python port of awslabs' validator), and every Lambda a Task calls a function of
the stack itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from statelint.config import Config
from statelint.linter import Linter
from statelint.problem.problem_type import ProblemType

from dataexport_local.state_machine_definition import (
    DefinitionError,
    check_state_names,
    refuse_anchors,
    refuse_duplicate_keys,
)

# What CloudFormation replaces in a definition: `${Name}`, not `${!Literal}`.
_PLACEHOLDER: Final = re.compile(r"\$\{([^}!][^}]*)\}")
# Service integrations are `arn:<partition>:states:::<service>:<action>`; anything else a Task
# names is a Lambda function (or an activity).
_SERVICE_INTEGRATION: Final = re.compile(r"^arn:[a-z-]+:states:::")
_LAMBDA_INVOKE: Final = re.compile(r"^arn:[a-z-]+:states:::lambda:invoke(\.waitForTaskToken)?$")
_STACK_CALLABLE_TYPES: Final = ("AWS::Lambda::Function", "AWS::StepFunctions::Activity")
# statelint wants BackoffRate written as a float (2.0); Step Functions takes any number >= 1.0,
# and its own validator lets this rule be ignored for that reason.
_STATELINT_CONFIG: Final = Config(ignored_problem_types={ProblemType.FLOAT})
# A Distributed Map's Label (the prefix of its child executions' names): newer than statelint
# 3.1.0, so it is checked here, as Step Functions does, and hidden from statelint.
_LABEL_MAX_LENGTH: Final = 40
_LABEL_FORBIDDEN: Final = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
# Stand-ins only statelint sees: it checks the shape of an ARN, not that it exists.
_STAND_IN_ARN: Final = "arn:aws:lambda:us-east-1:123456789012:function:{}"


@dataclass(frozen=True)
class Finding:
    """One thing AWS would refuse: where, by which rule, and what."""

    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.rule}] {self.message}"


def read_definition(path: Path) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The definition as data, or the finding that stops it being read (YAML aliases included)."""
    owner = str(path)
    rule = "readable-definition"
    try:
        text = path.read_text(encoding="utf-8")
        rule = "no-yaml-aliases"
        refuse_anchors(yaml.SafeLoader(text), owner)
        rule = "no-duplicate-keys"
        refuse_duplicate_keys(text, owner)
        data = yaml.safe_load(text)
    except DefinitionError as exc:
        return None, [Finding(owner, rule, str(exc).removeprefix(f"{owner}, "))]
    except (OSError, yaml.YAMLError) as exc:
        return None, [Finding(owner, "readable-definition", str(exc))]
    if not isinstance(data, dict):
        return None, [Finding(owner, "readable-definition", "the file does not hold a mapping")]
    return data, []


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), value)
    if isinstance(value, Mapping):
        return {key: _substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    return value


def _named_resource(value: Any) -> str | None:
    """The logical id a substitution's value points at: `!GetAtt X.Arn`, `!Ref X`, `${X.Arn}`."""
    if isinstance(value, Mapping) and len(value) == 1:
        (function, argument), *_ = value.items()
        if function == "Ref" and isinstance(argument, str):
            return argument
        if function == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            if isinstance(parts, list) and parts and parts[-1] == "Arn":
                return str(parts[0])
        if function == "Fn::Sub" and isinstance(argument, str):
            match = re.fullmatch(r"\$\{([^}.]+)(\.Arn)?\}", argument)
            return match.group(1) if match else None
    return None


def _task_states(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        if state.get("Type") == "Task":
            yield name, state
        for key in ("ItemProcessor", "Iterator"):
            nested = state.get(key)
            if isinstance(nested, Mapping) and isinstance(nested.get("States"), Mapping):
                yield from _task_states(nested["States"])
        for branch in state.get("Branches") or ():
            if isinstance(branch, Mapping) and isinstance(branch.get("States"), Mapping):
                yield from _task_states(branch["States"])


def _without_labels(
    states: Mapping[str, Any], owner: str, findings: list[Finding]
) -> dict[str, Any]:
    """`states` with every Map's Label checked into `findings` and removed, bodies included."""
    cleaned: dict[str, Any] = {}
    for name, original in states.items():
        if not isinstance(original, Mapping):
            cleaned[name] = original
            continue
        state = dict(original)
        label = state.pop("Label", None) if state.get("Type") == "Map" else None
        if label is not None and (
            not isinstance(label, str)
            or len(label) > _LABEL_MAX_LENGTH
            or _LABEL_FORBIDDEN.search(label)
        ):
            findings.append(
                Finding(
                    owner,
                    "map-label",
                    f"state {name}: Label {label!r} must be at most {_LABEL_MAX_LENGTH} "
                    "characters without whitespace or special characters",
                )
            )
        for key in ("ItemProcessor", "Iterator"):
            nested = state.get(key)
            if isinstance(nested, Mapping) and isinstance(nested.get("States"), Mapping):
                state[key] = {
                    **nested,
                    "States": _without_labels(nested["States"], owner, findings),
                }
        if isinstance(state.get("Branches"), list):
            state["Branches"] = [
                {**branch, "States": _without_labels(branch["States"], owner, findings)}
                if isinstance(branch, Mapping) and isinstance(branch.get("States"), Mapping)
                else branch
                for branch in state["Branches"]
            ]
        cleaned[name] = state
    return cleaned


def _called_functions(definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(state name, the raw text naming the Lambda it calls) for every Task that calls one."""
    states = definition.get("States")
    if not isinstance(states, Mapping):
        return
    for name, state in _task_states(states):
        resource = str(state.get("Resource", ""))
        if _LAMBDA_INVOKE.match(resource):
            arguments = state.get("Parameters") or state.get("Arguments") or {}
            target = arguments.get("FunctionName") if isinstance(arguments, Mapping) else None
            yield name, str(target)
        elif not _SERVICE_INTEGRATION.match(resource):
            yield name, resource


def check_definition(
    path: Path,
    substitutions: Mapping[str, Any],
    stack_resources: Mapping[str, Mapping[str, Any]],
) -> list[Finding]:
    """Everything Step Functions and CloudFormation would refuse in one packaged definition.

    `substitutions` are the machine's DefinitionSubstitutions as the transformed template holds
    them (intrinsics included); `stack_resources` are the transformed template's Resources.
    """
    owner = str(path)
    definition, findings = read_definition(path)
    if definition is None:
        return findings
    try:
        check_state_names(definition, owner)
    except DefinitionError as exc:
        findings.append(Finding(owner, "unique-state-names", str(exc).removeprefix(f"{owner}: ")))
    used = sorted({m for text in _strings(definition) for m in _PLACEHOLDER.findall(text)})
    findings.extend(
        Finding(
            owner,
            "placeholders-substituted",
            f"${{{name}}} has no DefinitionSubstitutions entry: CloudFormation would leave it "
            "in the definition as written",
        )
        for name in used
        if name not in substitutions
    )

    def callable_of_stack(name: str) -> str | None:
        logical_id = _named_resource(substitutions.get(name))
        resource = stack_resources.get(logical_id or "")
        return logical_id if resource and resource.get("Type") in _STACK_CALLABLE_TYPES else None

    for state, target in _called_functions(definition):
        match = _PLACEHOLDER.fullmatch(target)
        if match is None or callable_of_stack(match.group(1)) is None:
            findings.append(
                Finding(
                    owner,
                    "lambda-of-the-stack",
                    f"state {state} calls {target}, which is not a function of this stack "
                    "(expected ${Name} with DefinitionSubstitutions Name: !GetAtt <Function>.Arn)",
                )
            )

    stand_ins = {
        name: _STAND_IN_ARN.format(callable_of_stack(name) or name)
        if callable_of_stack(name)
        else f"stand-in-{name}"
        for name in used
    }
    linted = _substitute(definition, stand_ins)
    if isinstance(linted.get("States"), Mapping):
        linted["States"] = _without_labels(linted["States"], owner, findings)
    findings.extend(
        Finding(owner, "statelint", problem)
        for problem in Linter.validate(linted, _STATELINT_CONFIG)
    )
    return findings
