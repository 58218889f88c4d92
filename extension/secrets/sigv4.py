"""AWS Signature Version 4 for one request, on hashlib and hmac alone: no I/O, the time is a parameter."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM: Final = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """An AWS access key; the secret key and session token never appear in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """The steps of one signature, kept so tests can compare each with AWS's published ones."""

    canonical_request: str
    string_to_sign: str
    signature: str
    headers: dict[str, str]  # every header to send: the caller's, host, x-amz-date, token, authorization


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: float,
) -> Signature:
    """Sign a request at Unix time `now`; every header in `headers` is signed, so pass only those to sign."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    signed = {name.lower(): value for name, value in headers.items()}
    signed.setdefault("host", _host(url))
    signed["x-amz-date"] = amz_date
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    request = canonical_request(method, url, signed, body)
    to_sign = string_to_sign(amz_date, scope, request)
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={_signed_names(signed)}, Signature={signature}"
    )
    return Signature(canonical_request=request, string_to_sign=to_sign, signature=signature, headers=signed)


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """Method, path, query, headers, signed header names and payload hash, one per line (SigV4 task 1)."""
    parts = urlsplit(url)
    lowered = {name.lower(): _SPACES.sub(" ", value.strip()) for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in sorted(lowered))
    return "\n".join((
        method.upper(),
        _canonical_path(parts.path),
        _canonical_query(parts.query),
        canonical_headers,
        _signed_names(lowered),
        hashlib.sha256(body).hexdigest(),
    ))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The algorithm, the time, the scope and the canonical request's hash (SigV4 task 2)."""
    return "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived from the secret for one day, region and service (SigV4 task 3)."""
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signed_names(headers: Mapping[str, str]) -> str:
    return ";".join(sorted(name.lower() for name in headers))


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets in the Host header
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _canonical_path(path: str) -> str:
    """The path without `.`, `..` and empty segments (RFC 3986 5.2.4, and AWS drops repeated slashes too),
    encoded once more: every service but S3 signs the path encoded twice."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if segments and path.endswith("/") else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(key, safe="-_.~"), quote(value, safe="-_.~")) for key, value in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)
