"""The deploy gate's checks of what `sam build` produced: sizes against Lambda's limit, and the
architecture of every shared object the functions load (they run on arm64)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Lambda's limit on a function's unzipped code plus all of its layers.
LAMBDA_UNZIPPED_LIMIT_BYTES: Final = 262_144_000
ELF_MAGIC: Final = b"\x7fELF"
# e_machine values (the ELF header's 16-bit field at offset 18).
EM_X86_64: Final = 62
EM_AARCH64: Final = 183
_MACHINE_NAMES: Final = {3: "i386", 40: "arm", EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}
_E_MACHINE_OFFSET: Final = 18
_EI_DATA_OFFSET: Final = 5
_ELF_LITTLE_ENDIAN: Final = 1


def unzipped_size(directory: Path) -> int:
    """Bytes of every file under `directory` as Lambda would unpack them (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


@dataclass(frozen=True)
class FunctionSize:
    """One function's unzipped code and layers, against Lambda's limit."""

    function: str
    code_bytes: int
    layer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.layer_bytes

    @property
    def within_limit(self) -> bool:
        return self.total_bytes <= LAMBDA_UNZIPPED_LIMIT_BYTES

    def describe(self) -> str:
        mib = 1024 * 1024
        return (
            f"{self.function}: {self.total_bytes:,} bytes ({self.total_bytes / mib:.1f} MiB: "
            f"code {self.code_bytes:,} + layers {self.layer_bytes:,}) "
            f"of {LAMBDA_UNZIPPED_LIMIT_BYTES:,}"
        )


def function_size(function: str, code: Path, layers: Iterable[Path]) -> FunctionSize:
    """Measure a built function directory and the built layer directories it uses."""
    return FunctionSize(
        function=function,
        code_bytes=unzipped_size(code),
        layer_bytes=sum(unzipped_size(layer) for layer in layers),
    )


def elf_machine(path: Path) -> int | None:
    """The ELF header's e_machine of `path`, or None when it is not an ELF file."""
    with path.open("rb") as handle:
        header = handle.read(_E_MACHINE_OFFSET + 2)
    if len(header) < _E_MACHINE_OFFSET + 2 or not header.startswith(ELF_MAGIC):
        return None
    machine = header[_E_MACHINE_OFFSET:]
    if header[_EI_DATA_OFFSET] == _ELF_LITTLE_ENDIAN:
        return int.from_bytes(machine, "little")
    return int.from_bytes(machine, "big")


def machine_name(machine: int) -> str:
    return _MACHINE_NAMES.get(machine, f"e_machine {machine}")


def shared_objects(directory: Path) -> Iterator[Path]:
    """Every `*.so` and `*.so.<version>` file under `directory`."""
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            if name.endswith(".so") or ".so." in name:
                path = Path(root, name)
                if path.is_file() and not path.is_symlink():
                    yield path


def foreign_shared_objects(directory: Path, machine: int = EM_AARCH64) -> list[tuple[Path, int]]:
    """Shared objects under `directory` built for another machine than `machine`."""
    found = []
    for path in shared_objects(directory):
        actual = elf_machine(path)
        if actual is not None and actual != machine:
            found.append((path, actual))
    return found
