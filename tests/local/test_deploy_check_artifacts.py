"""The deploy gate's checks of built artifacts: every shared object built for the functions'
architecture (read from the ELF header), every function's unzipped size with its layers under
Lambda's limit, and both traced from a tiny SAM template through the offline transform."""

from __future__ import annotations

import struct
import sysconfig
from pathlib import Path

import pytest

from dataexport_local.artifact_checks import (
    EM_AARCH64,
    EM_X86_64,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    FunctionSize,
    elf_machine,
    foreign_shared_objects,
    function_size,
)
from dataexport_local.deploy_check import (
    CHECKOV_SKIPS,
    check_definitions,
    check_sizes_and_binaries,
    matching_skip,
    read_checkov_skips,
)
from dataexport_local.sam_package import package_and_transform


def elf_header(machine: int, little_endian: bool = True) -> bytes:
    """The first 20 bytes of a 64-bit ELF shared object for `machine`."""
    order = "<" if little_endian else ">"
    identity = b"\x7fELF" + bytes([2, 1 if little_endian else 2, 1]) + bytes(9)
    return identity + struct.pack(f"{order}HH", 3, machine)


def test_the_elf_header_names_the_machine(tmp_path: Path) -> None:
    arm = tmp_path / "arm.so"
    arm.write_bytes(elf_header(EM_AARCH64) + bytes(100))
    big_endian = tmp_path / "big.so"
    big_endian.write_bytes(elf_header(EM_AARCH64, little_endian=False))
    text = tmp_path / "notes.so.txt"
    text.write_text("not a binary")
    assert elf_machine(arm) == EM_AARCH64
    assert elf_machine(big_endian) == EM_AARCH64
    assert elf_machine(text) is None


def test_a_shared_object_of_this_machine_is_found_by_its_real_header() -> None:
    # A real extension module of the interpreter running the tests (this machine's build).
    extensions = sorted(Path(sysconfig.get_paths()["platlib"]).glob("**/*.so"))
    assert extensions, "the test venv has compiled extensions"
    assert elf_machine(extensions[0]) in {EM_X86_64, EM_AARCH64}


def test_an_x86_64_library_in_an_arm64_layer_is_named(tmp_path: Path) -> None:
    # Given a layer with one aarch64 and one x86_64 library (versioned name included)
    lib = tmp_path / "python" / "lib"
    lib.mkdir(parents=True)
    (lib / "good.cpython-311-aarch64-linux-gnu.so").write_bytes(elf_header(EM_AARCH64))
    (lib / "libbad.so.1.2").write_bytes(elf_header(EM_X86_64))
    # When the layer is checked for arm64
    foreign = foreign_shared_objects(tmp_path, EM_AARCH64)
    # Then only the x86_64 one is named
    assert foreign == [(lib / "libbad.so.1.2", EM_X86_64)]


def test_the_size_is_code_plus_every_layer_without_following_links(tmp_path: Path) -> None:
    code, layer_a, layer_b = (tmp_path / name for name in ("code", "a", "b"))
    for directory, file_bytes in ((code, 10), (layer_a, 1_000), (layer_b, 20_000)):
        (directory / "nested").mkdir(parents=True)
        (directory / "nested" / "file.bin").write_bytes(bytes(file_bytes))
    (code / "link").symlink_to(layer_b / "nested" / "file.bin")
    size = function_size("F", code, [layer_a, layer_b])
    assert (size.code_bytes, size.layer_bytes, size.total_bytes) == (10, 21_000, 21_010)


@pytest.mark.parametrize(
    ("code_bytes", "within"),
    [(0, True), (1, False)],
)
def test_the_limit_is_lambdas_262_144_000_bytes_inclusive(code_bytes: int, within: bool) -> None:
    size = FunctionSize("F", code_bytes=code_bytes, layer_bytes=LAMBDA_UNZIPPED_LIMIT_BYTES)
    assert size.within_limit is within
    assert f"code {code_bytes:,} + layers 262,144,000) of 262,144,000" in size.describe()


TINY_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: Layer
  QueryFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: QueryFunction
      Handler: app.handler
      Runtime: python3.11
      Architectures: [arm64]
      Layers: [!Ref Layer]
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: ../machine.asl.yaml
      DefinitionSubstitutions:
        QueryFunctionArn: !GetAtt QueryFunction.Arn
      Policies:
        - LambdaInvokePolicy:
            FunctionName: !Ref QueryFunction
"""

DEFINITION = """\
StartAt: Query
States:
  Query:
    Type: Task
    Resource: ${QueryFunctionArn}
    Next: Again
  Again:
    Type: Task
    Resource: ${QueryFunctionArn}
    End: true
"""


def built_stack(root: Path, definition: str) -> Path:
    """A "sam build" output under `root`: a function, its layer holding an x86_64 library, and a
    state machine whose DefinitionUri points out of the build directory, as sam build writes it."""
    build = root / "build"
    (build / "QueryFunction").mkdir(parents=True)
    (build / "QueryFunction" / "app.py").write_text("def handler(event, context): ...\n")
    (build / "Layer" / "python").mkdir(parents=True)
    (build / "Layer" / "python" / "libfast.so").write_bytes(elf_header(EM_X86_64))
    (build / "template.yaml").write_text(TINY_TEMPLATE)
    (root / "machine.asl.yaml").write_text(definition)
    return build / "template.yaml"


def test_a_tiny_built_template_passes_through_transform_to_its_files(tmp_path: Path) -> None:
    # When a built stack is packaged and transformed offline, then checked
    packaged = package_and_transform(built_stack(tmp_path, DEFINITION))
    (definition,) = check_definitions(packaged)
    sizes, binaries = check_sizes_and_binaries(packaged)
    # Then its definition is found behind its stand-in S3 location and passes
    assert definition.name == f"definition of Machine ({tmp_path / 'machine.asl.yaml'})"
    assert definition.passed, definition.failures
    # And the function is measured with its layer, and the x86_64 library is named
    assert sizes.passed and sizes.facts[0].startswith("QueryFunction: ")
    (failure,) = binaries.failures
    library = tmp_path / "build" / "Layer" / "python" / "libfast.so"
    assert failure.startswith(f"{library}: [arm64-binaries] built for x86_64")


@pytest.mark.parametrize(
    ("mutation", "rule"),
    [
        # the second state takes the first one's name
        (("  Again:", "  Query:"), "no-duplicate-keys"),
        # the second Task's Resource is an alias of the first one's
        (
            (
                "Resource: ${QueryFunctionArn}\n    Next",
                "Resource: &fn ${QueryFunctionArn}\n    Next",
            ),
            "no-yaml-aliases",
        ),
        (
            ("    Resource: ${QueryFunctionArn}\n    End", "    Resource: ${Missing}\n    End"),
            "placeholders-substituted",
        ),
    ],
)
def test_a_definition_aws_would_refuse_fails_the_gate(
    tmp_path: Path, mutation: tuple[str, str], rule: str
) -> None:
    old, new = mutation
    mutated = DEFINITION.replace(old, new, 1)
    if rule == "no-yaml-aliases":
        mutated = mutated.replace(
            "Resource: ${QueryFunctionArn}\n    End", "Resource: *fn\n    End"
        )
    assert mutated != DEFINITION
    (definition,) = check_definitions(package_and_transform(built_stack(tmp_path, mutated)))
    assert not definition.passed
    assert definition.failures[0].startswith(f"{tmp_path / 'machine.asl.yaml'}: [{rule}]")


def test_every_committed_checkov_skip_gives_a_reason(tmp_path: Path) -> None:
    skips = read_checkov_skips(Path(__file__).parents[2] / CHECKOV_SKIPS)
    assert skips and all(len(reason) > 40 for reason in skips.values())
    unexplained = tmp_path / "skips.yaml"
    unexplained.write_text("CKV_AWS_1: ''\n")
    with pytest.raises(ValueError, match="CKV_AWS_1 is skipped without a reason"):
        read_checkov_skips(unexplained)


def test_a_checkov_skip_covers_its_check_or_only_the_resource_it_names() -> None:
    skips = {"CKV_AWS_28:IdempotencyTable": "short-lived", "CKV_AWS_119": "account decision"}
    idempotency = {"check_id": "CKV_AWS_28", "resource": "AWS::DynamoDB::Table.IdempotencyTable"}
    control = {"check_id": "CKV_AWS_28", "resource": "AWS::DynamoDB::Table.ControlTable"}
    any_table = {"check_id": "CKV_AWS_119", "resource": "AWS::DynamoDB::Table.ControlTable"}
    assert matching_skip(idempotency, skips) == "CKV_AWS_28:IdempotencyTable"
    assert matching_skip(control, skips) is None
    assert matching_skip(any_table, skips) == "CKV_AWS_119"
