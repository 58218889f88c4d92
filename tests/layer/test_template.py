"""template.yaml: cfn-lint and the SAM translator pass offline, and what it deploys is what the build makes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from cfnlint.api import lint_file
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse
from support import ROOT

TEMPLATE = ROOT / "template.yaml"


def sam_template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` hands CloudFormation: local artifacts replaced by their S3 locations."""
    result = copy.deepcopy(template)
    for name, resource in result["Resources"].items():
        for key in ("ContentUri", "CodeUri"):
            if isinstance(resource.get("Properties", {}).get(key), str):
                resource["Properties"][key] = f"s3://artifacts-bucket/{name}.zip"
    return result


def translate(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    offline = boto3.session.Session(region_name="us-east-1")  # only names the region: no call is made
    translated: dict[str, Any] = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=offline).translate(
        packaged(template), parameter_values={"AWS::Region": "us-east-1", **parameters})
    return translated


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_cfn_lint_is_really_checking(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("MemorySize: 128", "MemorySize: 1"))
    assert lint_file(broken)


def test_the_sam_translator_accepts_it_and_keeps_every_layer_version() -> None:
    translated = translate(sam_template())
    layers = of_type(translated, "AWS::Lambda::LayerVersion")
    assert len(layers) == 8
    for layer in layers.values():
        # RetentionPolicy: Retain: an old version survives updates and stack deletion, for rollbacks.
        assert layer["DeletionPolicy"] == "Retain"
        assert len(layer["Properties"]["CompatibleRuntimes"]) == 1
    [function] = of_type(translated, "AWS::Lambda::Function").values()
    assert function["Properties"]["Layers"] == [{"Ref": next(n for n in layers if n.startswith("LayerPython313Arm64"))}]
    outputs = translated["Outputs"]
    assert {name for name in outputs if name.startswith("Layer")} == {f"{n}Arn" for n in sam_template()["Resources"]
                                                                       if n.startswith("Layer")}


def test_layers_only_when_the_example_function_is_not_wanted() -> None:
    template = sam_template()
    translated = translate(template, DeployExampleFunction="false")
    conditional = {n for n, r in translated["Resources"].items() if r.get("Condition") == "WithExampleFunction"}
    assert {"ExampleFunction", "ExampleRole", "ExampleLogGroup"} <= conditional
    assert not [n for n in of_type(translated, "AWS::Lambda::LayerVersion") if n in conditional]


def test_each_layer_publishes_the_zip_that_the_build_names(layer_build: ModuleType) -> None:
    layers = {n: r["Properties"] for n, r in sam_template()["Resources"].items()
              if r["Type"] == "AWS::Serverless::LayerVersion"}
    expected = {f"dist/{v.name}.zip": (v.runtime, v.architecture) for v in layer_build.VARIANTS}
    assert {p["ContentUri"]: (p["CompatibleRuntimes"][0], p["CompatibleArchitectures"][0])
            for p in layers.values()} == expected
    assert all(p["RetentionPolicy"] == "Retain" for p in layers.values())


def test_the_example_function_is_configured_through_environment_variables_only() -> None:
    function = sam_template()["Resources"]["ExampleFunction"]["Properties"]
    assert set(function["Environment"]["Variables"]) <= {
        "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_LAMBDA_HEADERS_SECRET_ARN", "OTEL_LAMBDA_HEADERS_PARAMETER"}
    assert sam_template()["Parameters"]["OtlpHeaders"]["NoEcho"] is True


def test_iam_is_least_privilege() -> None:
    translated = translate(sam_template())
    roles = of_type(translated, "AWS::IAM::Role")
    assert list(roles) == ["ExampleRole"]
    [role] = roles.values()
    assert "ManagedPolicyArns" not in role["Properties"]
    always, when = [], {}
    for policy in role["Properties"]["Policies"]:
        if "Fn::If" in policy:  # granted only when the matching parameter is set
            condition, granted, otherwise = policy["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            when[condition] = granted["PolicyDocument"]["Statement"]
        else:
            always += policy["PolicyDocument"]["Statement"]
    assert always == [{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": {"Fn::GetAtt": ["ExampleLogGroup", "Arn"]}}]
    assert when["HasHeadersSecret"] == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                         "Resource": {"Ref": "HeadersSecretArn"}}]
    assert when["HasHeadersParameter"] == [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${HeadersParameterName}"}}]
    [decrypt] = when["HasHeadersKey"]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == {"Ref": "HeadersKmsKeyArn"}
    assert set(decrypt["Condition"]["StringEquals"]) == {"kms:ViaService"}
    assert "*" not in json.dumps(translated["Resources"])


def test_the_translator_is_strict_too() -> None:
    template = sam_template()
    del template["Resources"]["LayerPython313Arm64"]["Properties"]["ContentUri"]
    with pytest.raises(InvalidDocumentException):
        translate(template)
