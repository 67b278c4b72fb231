"""The deploy gate: what `sam package` would upload, checked as AWS would check it.

    dataexport-local deploy-check --sam .tools/sam/bin/sam --checkov .tools/checkov/bin/checkov

In order: `sam validate --lint`; `sam build`; the built template packaged with stand-in S3
locations and transformed offline by the SAM translator; every packaged state machine definition
(definition_checks.py); cfn-lint on the transformed template; checkov on it, with the committed
skips of checkov-skips.yaml, each with its reason; every function's unzipped size with its layers
under Lambda's limit; every shared object the functions load built for their architecture. One
line per check, PASS or FAIL, and under a FAIL the file and the rule. Exit 1 on any failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from dataexport_local.artifact_checks import (
    EM_AARCH64,
    EM_X86_64,
    foreign_shared_objects,
    function_size,
    machine_name,
    shared_objects,
)
from dataexport_local.definition_checks import check_definition
from dataexport_local.sam_package import (
    STAND_IN_BUCKET,
    PackagedTemplate,
    package_and_transform,
    transform_template,
)

BUILT_TEMPLATE: Final = Path(".aws-sam/build/template.yaml")
TRANSFORMED_TEMPLATE: Final = Path(".aws-sam/deploy-check/transformed-template.json")
CHECKOV_SKIPS: Final = Path("checkov-skips.yaml")
_ARCHITECTURES: Final = {"arm64": EM_AARCH64, "x86_64": EM_X86_64}
_TOOL_OUTPUT_LINES: Final = 20


@dataclass
class CheckResult:
    """One line of the gate: its name, what failed (file and rule), and facts worth printing."""

    name: str
    failures: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def report(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}  {self.name}"]
        # What failed first, then the facts (counts, sizes, skips with their reasons).
        lines += [f"      {failure}" for failure in self.failures]
        lines += [f"      {fact}" for fact in self.facts]
        return "\n".join(lines)


def _run_tool(name: str, command: list[str]) -> CheckResult:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    result = CheckResult(name)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()
        result.failures = [f"exit {completed.returncode}", *output[-_TOOL_OUTPUT_LINES:]]
    return result


def check_definitions(packaged: PackagedTemplate) -> list[CheckResult]:
    """One result per state machine of the transformed template."""
    resources = packaged.transformed["Resources"]
    results = []
    for logical_id, machine in packaged.resources("AWS::StepFunctions::StateMachine"):
        properties = machine.get("Properties") or {}
        path = packaged.artifact(properties.get("DefinitionS3Location"))
        result = CheckResult(f"definition of {logical_id} ({path})")
        if path is None:
            result.failures.append(f"{logical_id}: [packaged-definition] no DefinitionUri file")
        else:
            substitutions = properties.get("DefinitionSubstitutions") or {}
            findings = check_definition(path, substitutions, resources)
            result.failures = [str(finding) for finding in findings]
        results.append(result)
    return results


def check_cfn_lint(cfn_lint: Path, template: Path) -> CheckResult:
    completed = subprocess.run(
        [str(cfn_lint), "--format", "parseable", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    result = CheckResult("cfn-lint (transformed template)")
    if completed.returncode != 0:
        # parseable: file:line:column:end line:end column:rule:message
        result.failures = (completed.stdout + completed.stderr).strip().splitlines()
    return result


def read_checkov_skips(path: Path) -> dict[str, str]:
    """Check id -> why it does not apply; a skip without a reason is refused."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of check id to reason")
    skips = {}
    for check_id, reason in data.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{path}: {check_id} is skipped without a reason")
        skips[str(check_id)] = " ".join(reason.split())
    return skips


def matching_skip(check: Mapping[str, Any], skips: Mapping[str, str]) -> str | None:
    """The skip-list key that covers a failed check: `id:LogicalId` first, then `id`."""
    logical_id = str(check["resource"]).rpartition(".")[2]
    for key in (f"{check['check_id']}:{logical_id}", str(check["check_id"])):
        if key in skips:
            return key
    return None


def check_checkov(checkov: Path, template: Path, skips: Mapping[str, str]) -> CheckResult:
    completed = subprocess.run(
        [
            *(str(checkov), "--file", str(template), "--framework", "cloudformation"),
            *("--output", "json", "--quiet", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    result = CheckResult("checkov (transformed template)")
    try:
        report: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        result.failures = [f"checkov did not answer: {completed.stderr.strip()[-500:]}"]
        return result
    skipped: Counter[str] = Counter()
    for check in report["results"]["failed_checks"]:
        skip = matching_skip(check, skips)
        if skip is not None:
            skipped[skip] += 1
            continue
        result.failures.append(
            f"{template}:{check['file_line_range'][0]}: [{check['check_id']}] "
            f"{check['check_name']} ({check['resource']})"
        )
    summary = report["summary"]
    result.facts.append(
        f"passed {summary['passed']}, failed {len(result.failures)}, "
        f"skipped with a reason {sum(skipped.values())} (checkov {summary['checkov_version']})"
    )
    for check_id, reason in skips.items():
        count = skipped.get(check_id, 0)
        note = "" if count else " (nothing to skip any more: remove it)"
        result.facts.append(f"skipped {check_id} x{count}{note}: {reason}")
    return result


def _layer_paths(packaged: PackagedTemplate, function: Mapping[str, Any]) -> list[Path | str]:
    layers: list[Path | str] = []
    for layer in (function.get("Properties") or {}).get("Layers") or []:
        resource = packaged.transformed["Resources"].get(
            layer.get("Ref") if isinstance(layer, Mapping) else None
        )
        content = (resource or {}).get("Properties", {}).get("Content")
        layers.append(packaged.artifact(content) or json.dumps(layer))
    return layers


def check_sizes_and_binaries(packaged: PackagedTemplate) -> tuple[CheckResult, CheckResult]:
    """Every function's unzipped size with its layers, and its shared objects' architecture."""
    sizes = CheckResult("unzipped size of every function with its layers (Lambda: 250 MiB)")
    binaries = CheckResult("shared objects built for each function's architecture")
    # A layer is shared by many functions: each directory is read once per architecture.
    scanned: set[tuple[Path, int]] = set()
    shared_object_count = 0
    for logical_id, function in packaged.resources("AWS::Lambda::Function"):
        properties = function.get("Properties") or {}
        code = packaged.artifact(properties.get("Code"))
        layers = _layer_paths(packaged, function)
        unmeasured = [str(layer) for layer in [code, *layers] if not isinstance(layer, Path)]
        if code is None or unmeasured:
            sizes.failures.append(
                f"{logical_id}: [measured-size] not built locally: {', '.join(unmeasured)}"
            )
            continue
        built_layers = [layer for layer in layers if isinstance(layer, Path)]
        size = function_size(logical_id, code, built_layers)
        (sizes.facts if size.within_limit else sizes.failures).append(size.describe())
        architecture = (properties.get("Architectures") or ["x86_64"])[0]
        machine = _ARCHITECTURES[architecture]
        for directory in [code, *built_layers]:
            if (directory, machine) in scanned:
                continue
            scanned.add((directory, machine))
            shared_object_count += sum(1 for _ in shared_objects(directory))
            binaries.failures += [
                f"{path}: [{architecture}-binaries] built for {machine_name(actual)}, "
                f"but {logical_id} runs on {architecture}"
                for path, actual in foreign_shared_objects(directory, machine)
            ]
    binaries.facts.append(f"{shared_object_count} shared objects read, each once")
    return sizes, binaries


# SAM names a layer version `<LogicalId><hash of its content location>`.
_HASHED_LAYER_ID: Final = re.compile(r"(?P<logical_id>\w+?)[0-9a-f]{10}")


def _without_artifact_locations(value: Any, layer_ids: Mapping[str, str]) -> Any:
    """`value` with every stand-in S3 location replaced by one marker and every layer named by
    its own logical id: `sam build` names its artifact folders after logical ids, template.yaml
    names source folders, and the layers' logical ids carry a hash of that location."""
    if isinstance(value, Mapping):
        if STAND_IN_BUCKET in (value.get("S3Bucket"), value.get("Bucket")):
            return "<artifact>"
        if set(value) == {"Ref"} and value["Ref"] in layer_ids:
            return {"Ref": layer_ids[value["Ref"]]}
        return {key: _without_artifact_locations(item, layer_ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_artifact_locations(item, layer_ids) for item in value]
    return value


def _comparable_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    layer_ids = {}
    for logical_id, resource in resources.items():
        match = _HASHED_LAYER_ID.fullmatch(logical_id)
        if resource.get("Type") == "AWS::Lambda::LayerVersion" and match is not None:
            layer_ids[logical_id] = match.group("logical_id")
    return {
        layer_ids.get(logical_id, logical_id): {
            key: _without_artifact_locations(resource.get(key), layer_ids)
            for key in ("Type", "Condition", "Properties")
        }
        for logical_id, resource in resources.items()
    }


def check_runtime_template(packaged: PackagedTemplate, template: Path) -> CheckResult:
    """The local runtime transforms template.yaml itself; it must come out as the built one
    does, resource by resource (type, condition, properties), artifact locations aside."""
    result = CheckResult("local runtime's transform equals the built template's")
    local = _comparable_resources(transform_template(template).transformed["Resources"])
    built = _comparable_resources(packaged.transformed["Resources"])
    for logical_id in sorted(set(local) | set(built)):
        ours, theirs = local.get(logical_id), built.get(logical_id)
        if ours is None or theirs is None:
            where = "built template" if ours is None else "local runtime's"
            result.failures.append(f"{logical_id}: [runtime-template] only in the {where}")
            continue
        for key, value in ours.items():
            if value != theirs[key]:
                result.failures.append(f"{logical_id}: [runtime-template] {key} differs")
    result.facts.append(f"{len(built)} resources compared")
    return result


def run_gate(sam: Path, checkov: Path, cfn_lint: Path, template: Path) -> list[CheckResult]:
    """Every check in order; a later check is skipped only when what it reads was not made."""
    results: list[CheckResult] = []

    def record(result: CheckResult) -> CheckResult:
        print(result.report(), flush=True)
        results.append(result)
        return result

    record(_run_tool("sam validate --lint", [str(sam), "validate", "--lint", "-t", str(template)]))
    if not record(_run_tool("sam build", [str(sam), "build", "-t", str(template)])).passed:
        return results
    transform = CheckResult("SAM transform of the packaged template (offline)")
    try:
        packaged = package_and_transform(BUILT_TEMPLATE)
    except Exception as exc:  # the translator raises several types; all mean the same here
        transform.failures.append(f"{BUILT_TEMPLATE}: [sam-transform] {exc}")
        record(transform)
        return results
    TRANSFORMED_TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    TRANSFORMED_TEMPLATE.write_text(json.dumps(packaged.transformed, indent=1), encoding="utf-8")
    resource_count = len(packaged.transformed["Resources"])
    transform.facts.append(f"{resource_count} resources, written to {TRANSFORMED_TEMPLATE}")
    record(transform)
    record(check_runtime_template(packaged, template))
    for result in check_definitions(packaged):
        record(result)
    record(check_cfn_lint(cfn_lint, TRANSFORMED_TEMPLATE))
    record(check_checkov(checkov, TRANSFORMED_TEMPLATE, read_checkov_skips(CHECKOV_SKIPS)))
    for result in check_sizes_and_binaries(packaged):
        record(result)
    return results


def deploy_check(sam: Path, checkov: Path, template: Path) -> int:
    """Run the gate, print its summary, return the exit status."""
    started = time.monotonic()
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    results = run_gate(sam, checkov, cfn_lint, template)
    failed = [result.name for result in results if not result.passed]
    elapsed = time.monotonic() - started
    verdict = f"FAILED: {'; '.join(failed)}" if failed else "passed"
    print(f"deploy-check: {len(results)} checks, {len(failed)} failed, {elapsed:.0f}s, {verdict}")
    return 1 if failed else 0
