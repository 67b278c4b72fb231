"""The template `sam package` would hand to CloudFormation, and CloudFormation's SAM transform of
it, made offline: no bucket, no AWS call.

`sam package` uploads every local artifact of the built template (function code, layer content,
state machine definitions) and writes its S3 location in place of the path; the transform then
turns SAM resources into CloudFormation ones. The deploy gate does this to `sam build`'s output;
the local runtime to template.yaml itself, so the resources it creates are the transform's.

Each artifact gets a stand-in S3 location whose key is its path under the template's directory,
so the transformed template can be traced back to the files that would have been uploaded.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

from dataexport_local.cfn_yaml import TemplateError, read_template_document

# The translator warns on every transform that it has usage metrics nobody publishes.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

STAND_IN_BUCKET: Final = "deploy-check-stand-in"
# The transform asks boto3 for a region only to pick the partition's ARNs.
STAND_IN_REGION: Final = "us-east-1"
# SAM resource property that `sam package` uploads, by resource type.
_ARTIFACT_PROPERTIES: Final = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


@dataclass(frozen=True)
class PackagedTemplate:
    """The transformed template and the local file behind each stand-in S3 key."""

    transformed: dict[str, Any]
    artifacts: Mapping[str, Path]

    def resources(self, kind: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [
            (logical_id, resource)
            for logical_id, resource in self.transformed["Resources"].items()
            if resource.get("Type") == kind
        ]

    def artifact(self, location: Any) -> Path | None:
        """The local file or directory behind an S3 location `{Bucket, Key}` or `s3://` text."""
        if isinstance(location, Mapping):
            key = location.get("Key") or location.get("S3Key")
        elif isinstance(location, str):
            key = location.removeprefix(f"s3://{STAND_IN_BUCKET}/")
        else:
            key = None
        return self.artifacts.get(str(key)) if key is not None else None


class _NoManagedPolicies:
    """The transform looks up managed policy names through IAM; the template names none by bare
    name (SAM's own basic execution role is an ARN), so the map is empty, and an unknown name
    fails the transform, as it would in CloudFormation."""

    def load(self) -> dict[str, str]:
        return {}


def package_and_transform(built_template: Path) -> PackagedTemplate:
    """Stand in for `sam package`, then run the SAM transform on the result."""
    document = read_template_document(built_template)
    artifacts: dict[str, Path] = {}
    for resource in document["Resources"].values():
        prop = _ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties") or {}
        uri = properties.get(prop) if prop else None
        if prop and isinstance(uri, str) and not uri.startswith("s3://"):
            artifacts[uri] = Path(os.path.normpath(built_template.parent / uri))
            properties[prop] = f"s3://{STAND_IN_BUCKET}/{uri}"
    os.environ.setdefault("AWS_DEFAULT_REGION", STAND_IN_REGION)
    try:
        transformed: dict[str, Any] = transform(document, {}, _NoManagedPolicies())
    except InvalidDocumentException as exc:
        reasons = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"The SAM transform refuses {built_template}: {reasons}") from exc
    return PackagedTemplate(transformed=transformed, artifacts=artifacts)


def transform_template(template: Path) -> PackagedTemplate:
    """`package_and_transform` of this template file as it is now (each runtime start transforms
    it again only when the file has changed)."""
    resolved = template.resolve()
    stat = resolved.stat()
    cached = _transformed(resolved, stat.st_mtime_ns, stat.st_size)
    return PackagedTemplate(copy.deepcopy(cached.transformed), cached.artifacts)


@functools.lru_cache(maxsize=8)
def _transformed(template: Path, modified_ns: int, size: int) -> PackagedTemplate:
    return package_and_transform(template)
