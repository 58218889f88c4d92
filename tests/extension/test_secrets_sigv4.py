"""The SigV4 signer: AWS's published test-suite vectors, and agreement with botocore's signer on random requests."""

from __future__ import annotations

import calendar
import time

import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials as BotoCredentials  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from extension.secrets.sigv4 import Credentials, sign, signing_key

# The AWS SigV4 test suite's example key, date and scope (also used by botocore's and awscrt's own tests).
SUITE_KEYS = Credentials(access_key_id="AKIDEXAMPLE", secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = calendar.timegm(time.strptime("20150830T123600Z", "%Y%m%dT%H%M%SZ"))
SUITE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


def test_get_vanilla_matches_every_published_step() -> None:
    signed = sign("GET", "https://example.amazonaws.com/", {}, b"", credentials=SUITE_KEYS,
                  region="us-east-1", service="service", now=SUITE_TIME)

    assert signed.canonical_request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    assert signed.headers["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    assert signed.headers["x-amz-date"] == "20150830T123600Z"
    assert "x-amz-security-token" not in signed.headers


def test_get_vanilla_query_order_key_case_sorts_the_query() -> None:
    signed = sign("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", {}, b"",
                  credentials=SUITE_KEYS, region="us-east-1", service="service", now=SUITE_TIME)

    assert signed.canonical_request.splitlines()[2] == "Param1=value1&Param2=value2"
    assert signed.signature == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"


def test_post_x_www_form_urlencoded_signs_the_content_type_and_body() -> None:
    signed = sign("POST", "https://example.amazonaws.com/", {"Content-Type": "application/x-www-form-urlencoded"},
                  b"Param1=value1", credentials=SUITE_KEYS, region="us-east-1", service="service", now=SUITE_TIME)

    assert signed.string_to_sign.splitlines()[-1] == "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
    assert signed.headers["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    )


def test_the_documented_iam_list_users_example() -> None:
    """The worked example of AWS's "Signature Version 4 signing process" page (IAM ListUsers)."""
    signed = sign("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
                  {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, b"",
                  credentials=SUITE_KEYS, region="us-east-1", service="iam", now=SUITE_TIME)

    assert signed.string_to_sign.splitlines()[-1] == "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    assert signing_key(SUITE_KEYS.secret_access_key, "20150830", "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    )
    assert signed.signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_a_session_token_is_sent_and_signed() -> None:
    keys = Credentials(access_key_id="ASIAEXAMPLE", secret_access_key="secret", session_token="token/with+chars=")
    signed = sign("POST", "https://secretsmanager.eu-west-1.amazonaws.com/", {"x-amz-target": "t"}, b"{}",
                  credentials=keys, region="eu-west-1", service="secretsmanager", now=SUITE_TIME)

    assert signed.headers["x-amz-security-token"] == "token/with+chars="
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target," in signed.headers["authorization"]
    assert signed.signature == _botocore_signature(
        "POST", "https://secretsmanager.eu-west-1.amazonaws.com/", signed.headers, b"{}", keys,
        "eu-west-1", "secretsmanager")


def test_a_non_default_port_is_part_of_the_host_and_a_default_one_is_not() -> None:
    local = sign("POST", "http://127.0.0.1:5000/", {}, b"", credentials=SUITE_KEYS, region="us-east-1",
                 service="ssm", now=SUITE_TIME)
    default = sign("POST", "https://ssm.us-east-1.amazonaws.com:443/", {}, b"", credentials=SUITE_KEYS,
                   region="us-east-1", service="ssm", now=SUITE_TIME)

    assert local.headers["host"] == "127.0.0.1:5000"
    assert default.headers["host"] == "ssm.us-east-1.amazonaws.com"


@pytest.mark.parametrize(("path", "canonical"), [
    ("", "/"), ("/.", "/"), ("/a/./b/../c/", "/a/c/"), ("//a//b", "/a/b"), ("/../a", "/a"), ("/a%20b", "/a%2520b"),
])
def test_the_path_is_normalized_and_encoded_twice(path: str, canonical: str) -> None:
    signed = sign("GET", f"https://example.amazonaws.com{path}", {}, b"", credentials=SUITE_KEYS,
                  region="us-east-1", service="service", now=SUITE_TIME)

    assert signed.canonical_request.splitlines()[1] == canonical


def test_credentials_never_show_their_secret_parts() -> None:
    keys = Credentials(access_key_id="ASIAEXAMPLE", secret_access_key="s3cr3t-key", session_token="s3ss10n")

    assert "s3cr3t-key" not in repr(keys) and "s3ss10n" not in repr(keys)


_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=1, max_size=12)
_SEGMENT = _TOKEN | st.sampled_from(["", ".", "..", "a%20b"])
_VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 -_.:/;=,", max_size=30)


@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=st.lists(_SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    query=st.lists(st.tuples(_TOKEN, _TOKEN), max_size=3),
    headers=st.dictionaries(_TOKEN.map(lambda name: f"x-test-{name.lower()}"), _VALUE, max_size=4),
    body=st.binary(max_size=64),
    token=st.none() | _TOKEN,
    now=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_agrees_with_botocore_on_any_simple_request(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes,
    token: str | None, now: int,
) -> None:
    keys = Credentials(access_key_id="AKIDEXAMPLE", secret_access_key="wJalrXUtnFEMI", session_token=token)
    url = "https://example.amazonaws.com" + path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")

    signed = sign(method, url, headers, body, credentials=keys, region="us-west-2", service="ssm", now=now)

    assert signed.signature == _botocore_signature(method, url, signed.headers, body, keys, "us-west-2", "ssm")


def _botocore_signature(method: str, url: str, headers: dict[str, str], body: bytes, keys: Credentials,
                        region: str, service: str) -> str:
    """botocore's signature over the headers we signed, computed the way moto's server checks ours."""
    auth = SigV4Auth(BotoCredentials(keys.access_key_id, keys.secret_access_key, keys.session_token), service, region)
    sent = {name: value for name, value in headers.items() if name != "authorization"}
    request = AWSRequest(method=method, url=url, data=body, headers=sent)
    request.context["timestamp"] = sent["x-amz-date"]
    signature: str = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return signature
