"""template.yaml goes through the SAM transform, as CloudFormation receives it, and is resolved to
what the runtime creates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dataexport_local.cfn_yaml import TemplateError, read_template_document
from dataexport_local.template import (
    DEFAULT_TEMPLATE_PATH,
    IntrinsicResolver,
    StackTemplate,
    plan_physical_resources,
    resolve_parameters,
    resolve_template,
)
from tests.local.conftest import BACKUP_PARAMETERS, DATABASE_SECRET, STUB_TEMPLATE

UNRESOLVED = re.compile(r"\$\{|'Ref'|'Fn::")


@pytest.fixture(scope="module")
def real_template() -> StackTemplate:
    # With a backup image, so the backup resources (conditional on it) are there too.
    return resolve_template(
        DEFAULT_TEMPLATE_PATH,
        BACKUP_PARAMETERS,
    )


def test_every_function_of_the_real_template_gets_a_plain_string_environment(
    real_template: StackTemplate,
) -> None:
    # Given the project's template.yaml
    document = read_template_document(DEFAULT_TEMPLATE_PATH)
    declared = {
        logical_id
        for logical_id, resource in document["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    # When it is resolved, then every function is there with its code and a resolved environment
    assert {function.logical_id for function in real_template.functions} == declared
    global_variables = set(document["Globals"]["Function"]["Environment"]["Variables"])
    for function in real_template.functions:
        assert function.handler_file.is_file(), function.handler_file
        assert function.environment, function.logical_id
        assert global_variables <= set(function.environment), "Globals merged into each function"
        for name, value in function.environment.items():
            # (empty only where a parameter is optional, e.g. DATABASE_HOST)
            assert isinstance(value, str), (function.logical_id, name)
            assert not UNRESOLVED.search(value), (function.logical_id, name, value)


def test_globals_and_function_settings_merge_as_sam_merges_them(
    real_template: StackTemplate,
) -> None:
    # Given Globals (Timeout 30, MemorySize 512) and functions that override some of it
    format_function = real_template.function("ExportFormatFunction")
    expire_function = real_template.function("ExportExpireFunction")

    # Then the function's own values win and the rest come from Globals
    assert (format_function.timeout_seconds, format_function.memory_mb) == (900, 1024)
    assert (expire_function.timeout_seconds, expire_function.memory_mb) == (30, 512)
    tables = {table.logical_id: table.name for table in real_template.tables}
    assert format_function.environment["EXPORTS_TABLE_NAME"] == tables["ExportsTable"]
    assert format_function.environment["DATABASE_SECRET_ARN"] == DATABASE_SECRET
    assert format_function.layer_dirs == (DEFAULT_TEMPLATE_PATH.parent / "layers" / "dataexport",)


def test_every_state_machine_substitution_resolves_to_a_function_of_the_template(
    real_template: StackTemplate,
) -> None:
    # Given the state machines and their DefinitionSubstitutions
    function_arns = {function.arn for function in real_template.functions}
    assert {m.logical_id for m in real_template.state_machines} == {
        "ExportStateMachine",
        "BackupStateMachine",
    }
    for machine in real_template.state_machines:
        # When the ASL definition is read with its substitutions
        definition = machine.definition()

        # Then no placeholder is left, every function substitution is one of our functions and
        # every Task runs one of them or a service integration (the backup's ECS task)
        text = json.dumps(definition)
        assert "${" not in text
        named_functions = {
            value for key, value in machine.substitutions.items() if key.endswith("FunctionArn")
        }
        assert named_functions and named_functions <= function_arns
        resources = set(re.findall(r'"Resource": "([^"]+)"', text))
        integrations = {arn for arn in resources if arn.startswith("arn:aws:states:::")}
        assert resources - integrations and resources - integrations <= function_arns
        assert integrations <= {"arn:aws:states:::ecs:runTask.sync"}


def test_a_function_s_environment_names_the_resources_it_refers_to(
    real_template: StackTemplate,
) -> None:
    api = real_template.function("ApiFunction").environment
    machines = {machine.logical_id: machine.arn for machine in real_template.state_machines}
    assert api["EXPORT_STATE_MACHINE_ARN"] == machines["ExportStateMachine"]
    assert api["EXPORTS_BUCKET_NAME"] == real_template.buckets[0].name


def test_the_api_routes_and_gateway_responses_come_from_the_template(
    real_template: StackTemplate,
) -> None:
    (api,) = real_template.apis
    routes = {(route.method, route.path) for route, _ in real_template.routes(api)}
    assert ("GET", "/v1/exports/{id}") in routes and ("POST", "/v1/exports") in routes
    by_route = {(route.method, route.path): route for route in api.routes}
    assert by_route[("GET", "/v1/openapi.json")].authorizer is None
    authorizer = api.authorizers[by_route[("GET", "/v1/exports/{id}")].authorizer or ""]
    assert authorizer.function_arn == real_template.function("AuthorizerFunction").arn
    assert authorizer.identity_header == "Authorization"
    assert api.gateway_responses["UNAUTHORIZED"].status_code == 401
    assert api.stage == "dev"


def test_parameter_overrides_are_validated_like_cloudformation() -> None:
    document = read_template_document(DEFAULT_TEMPLATE_PATH)
    values = resolve_parameters(
        document, {"DatabaseSecretArn": DATABASE_SECRET, "ExportRetentionSeconds": "3"}
    )
    assert values["ExportRetentionSeconds"] == "3"
    assert values["DatabaseSubnetIds"] == [""]
    with pytest.raises(TemplateError, match="below"):
        resolve_parameters(document, {"DatabaseSecretArn": "x", "ExportRetentionSeconds": "0"})
    with pytest.raises(TemplateError, match="not one of"):
        resolve_parameters(document, {"DatabaseSecretArn": "x", "LogLevel": "LOUD"})
    with pytest.raises(TemplateError, match="no parameter"):
        resolve_parameters(document, {"DatabaseSecretArn": "x", "Nope": "1"})
    with pytest.raises(TemplateError, match="DatabaseSecretArn"):
        resolve_parameters(document, {})


def test_conditions_if_and_novalue_follow_the_parameters() -> None:
    # Given the stub template's InVpc condition on a CommaDelimitedList and French on a String
    document = read_template_document(STUB_TEMPLATE)
    physical = plan_physical_resources(document)

    def resolver(**overrides: str) -> IntrinsicResolver:
        values = resolve_parameters(document, {"DatabaseSecretArn": "arn:db", **overrides})
        return IntrinsicResolver(document, values, physical)

    api_properties = document["Resources"]["ApiFunction"]["Properties"]

    # Then !If picks a branch, and AWS::NoValue removes the property
    outside = resolver().resolve(api_properties)
    assert "VpcConfig" not in outside
    assert outside["Environment"]["Variables"]["GREETING"] == "hello from us-east-1"
    inside = resolver(SubnetIds="subnet-1,subnet-2", Greeting="bonjour").resolve(api_properties)
    assert inside["VpcConfig"] == {"SubnetIds": ["subnet-1", "subnet-2"]}
    assert inside["Environment"]["Variables"]["GREETING"] == "bonjour"


def test_intrinsic_functions_evaluate_like_cloudformation(tmp_path: Path) -> None:
    # Given a template using the short forms of many intrinsic functions
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Parameters:
  Names: {Type: CommaDelimitedList, Default: "a,b,c"}
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Table: {Type: AWS::DynamoDB::Table, Properties: {TableName: fixed-table}}
Outputs:
  Joined: {Value: !Join ["-", !Ref Names]}
  Second: {Value: !Select [1, !Split [",", "x,y,z"]]}
  Subbed: {Value: !Sub "${Table.Arn}/index/${!Literal}/${AWS::AccountId}"}
  SubVars: {Value: !Sub ["${Name}-${AWS::Region}", {Name: !Ref Table}]}
  Encoded: {Value: !Base64 "hi"}
  Same: {Value: !Equals [!Ref "AWS::Partition", aws]}
""",
        encoding="utf-8",
    )

    # When it is resolved
    outputs = resolve_template(template).outputs

    # Then each function gives what CloudFormation gives
    values = {name: output["Value"] for name, output in outputs.items()}
    assert values == {
        "Joined": "a-b-c",
        "Second": "y",
        "Subbed": (
            "arn:aws:dynamodb:us-east-1:123456789012:table/fixed-table/index/${Literal}/123456789012"
        ),
        "SubVars": "fixed-table-us-east-1",
        "Encoded": "aGk=",
        "Same": True,
    }


def refused(tmp_path: Path, text: str, reason: str) -> None:
    """Resolving the template `text` fails with an error matching `reason`."""
    template = tmp_path / "template.yaml"
    template.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=reason):
        resolve_template(template)


def test_a_template_the_sam_transform_refuses_is_an_error_naming_the_resource(
    tmp_path: Path,
) -> None:
    refused(
        tmp_path,
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Broken: {Type: AWS::Serverless::Function, Properties: {CodeUri: x/, Handler: a.b}}\n",
        r"Broken.*Runtime and Handler",
    )


def test_an_unknown_reference_is_an_error_naming_it(tmp_path: Path) -> None:
    refused(
        tmp_path,
        "Resources:\n  Bucket: {Type: AWS::S3::Bucket}\n"
        "Outputs:\n  Bad: {Value: !GetAtt Bucket.Nonsense}\n",
        r"Bucket\.Nonsense",
    )


def test_sam_policy_templates_become_iam_statements_on_each_function_s_own_role(
    real_template: StackTemplate,
) -> None:
    # Given the Format function, whose Policies use SAM's policy templates
    format_function = real_template.function("ExportFormatFunction")
    role = real_template.role(format_function.role_arn)

    # Then its own role holds them as plain IAM statements on the resolved resources
    statements = [
        statement
        for document in role.inline_policies.values()
        for statement in document["Statement"]
    ]
    secret_reads = [s for s in statements if s["Action"] == ["secretsmanager:GetSecretValue"]]
    assert {s["Resource"] for s in secret_reads} >= {DATABASE_SECRET}
    assert role.trust_policy["Statement"][0]["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in (
        role.managed_policy_arns
    )
    # and no other function shares it
    others = {f.role_arn for f in real_template.functions if f is not format_function}
    assert format_function.role_arn not in others
    assert UNRESOLVED.search(json.dumps(role.inline_policies)) is None


def test_two_functions_may_give_one_variable_two_values(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  One:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: one/
      Handler: app.h
      Runtime: python3.11
      Environment: {Variables: {MODE: fast}}
  Two:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: two/
      Handler: app.h
      Runtime: python3.11
      Environment: {Variables: {MODE: slow}}
""",
        encoding="utf-8",
    )
    # Each function runs in its own sandbox, with its own value
    resolved = resolve_template(template)
    assert resolved.function("One").environment["MODE"] == "fast"
    assert resolved.function("Two").environment["MODE"] == "slow"


@pytest.mark.parametrize(
    ("parameters", "rule"),
    [
        ({"BackupImageUri": "repo/backup:1"}, "BackupsNeedSubnets"),
        ({"DatabaseSubnetIds": "subnet-1"}, "SubnetsNeedASecurityGroup"),
        ({"DatabaseSecurityGroupId": "sg-1"}, "ASecurityGroupNeedsSubnets"),
        (
            {"DatabaseSubnetIds": "subnet-1,", "DatabaseSecurityGroupId": "sg-1"},
            "ASecurityGroupNeedsSubnets",
        ),
    ],
)
def test_a_parameter_set_the_template_s_rules_refuse_is_refused_naming_the_rule(
    parameters: dict[str, str], rule: str
) -> None:
    # Given parameters that cannot work together, then nothing resolves, and the error names the
    # rule and says what is missing, as CloudFormation refuses the stack before creating anything
    with pytest.raises(TemplateError, match=rf"Rule {rule}: \w+ needs"):
        resolve_template(
            DEFAULT_TEMPLATE_PATH, {"DatabaseSecretArn": DATABASE_SECRET, **parameters}
        )


def test_coherent_parameter_sets_pass_the_template_s_rules() -> None:
    for parameters in (
        {},
        {"DatabaseSubnetIds": "subnet-1,subnet-2", "DatabaseSecurityGroupId": "sg-1"},
        BACKUP_PARAMETERS,
    ):
        resolve_template(
            DEFAULT_TEMPLATE_PATH, {"DatabaseSecretArn": DATABASE_SECRET, **parameters}
        )


def test_the_deploy_guide_lists_every_parameter_of_the_template() -> None:
    guide = (DEFAULT_TEMPLATE_PATH.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    document = read_template_document(DEFAULT_TEMPLATE_PATH)
    missing = [name for name in document["Parameters"] if f"| `{name}` |" not in guide]
    assert not missing, f"docs/deploy.md does not list {missing}"
