"""State machine definitions read as Step Functions would receive them from `sam package`.

`sam package` uploads a `DefinitionUri` file unchanged, so anything Step Functions would refuse in
it must be refused here too: YAML anchors and aliases (CloudFormation's YAML reader takes none),
and a state name used twice anywhere in one machine, Map and Parallel bodies included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

# Where ASL nests a set of states inside a state.
_NESTED_MACHINES = ("ItemProcessor", "Iterator")


class DefinitionError(Exception):
    """A definition Step Functions would refuse; the message names the file and the rule."""


def refuse_anchors(loader: yaml.SafeLoader, owner: str) -> None:
    """Raise DefinitionError at the first anchor or alias of the document `loader` reads."""
    while not loader.check_event(yaml.StreamEndEvent):
        event = loader.get_event()  # type: ignore[no-untyped-call]
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            mark = event.start_mark
            raise DefinitionError(
                f"{owner}, line {mark.line + 1}: YAML {kind} '{anchor}'; the definition is "
                "uploaded as written and Step Functions does not accept YAML anchors or "
                "aliases: write the shared part out"
            )


def _state_sets(definition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    states = definition.get("States")
    if not isinstance(states, Mapping):
        return
    yield states
    for state in states.values():
        if not isinstance(state, Mapping):
            continue
        for key in _NESTED_MACHINES:
            nested = state.get(key)
            if isinstance(nested, Mapping):
                yield from _state_sets(nested)
        for branch in state.get("Branches") or ():
            if isinstance(branch, Mapping):
                yield from _state_sets(branch)


def duplicate_state_names(definition: Mapping[str, Any]) -> list[str]:
    """State names used more than once across the whole machine, nested bodies included."""
    counts = Counter(name for states in _state_sets(definition) for name in states)
    return sorted(name for name, count in counts.items() if count > 1)


def check_state_names(definition: Mapping[str, Any], owner: str) -> None:
    duplicates = duplicate_state_names(definition)
    if duplicates:
        raise DefinitionError(
            f"{owner}: state names must be unique in the whole state machine; used more than "
            f"once: {', '.join(duplicates)}"
        )


def refuse_duplicate_keys(text: str, owner: str) -> None:
    """Raise DefinitionError at a key written twice in one mapping (two states of one name side
    by side): a YAML reader keeps the last silently, so the first state would vanish unseen."""
    pending = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise DefinitionError(
                            f"{owner}, line {key.start_mark.line + 1}: key '{key.value}' is "
                            "written twice in one mapping; a YAML reader keeps only the last"
                        )
                    seen.add(key.value)
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
