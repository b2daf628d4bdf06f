"""One IAM identity per function, and the check of a caller's grant for what the gateway serves.

- ``provision``: with the admin key of ``dynamodb.py``, creates one moto IAM user per
  function with exactly the policy documents ``iam.function_policies`` resolved from the
  template, and an access key for it. moto then enforces those policies on every DynamoDB
  call the function's environment makes with that key.
- ``Authorizer``: what API Gateway (``@connections``) and Lambda (Invoke) do with a signed
  request: find the caller by the access key id of its SigV4 ``Authorization`` header,
  verify the signature with botocore's signer (as moto does), and evaluate the caller's
  policies for the action and resource with moto's IAM policy evaluator (an explicit
  ``Deny`` wins; otherwise some statement must ``Allow``).

Identities are plain JSON (``save``/``load``) so that the processes of ``scripts/dev`` share
them through a file (mode 0600): the keys are local to moto and worth nothing elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tokenrelay.iam")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)")
_SIGNATURE = re.compile(r"Signature=([0-9a-f]+)")


@dataclass(frozen=True)
class Identity:
    function: str  # the template's logical id: StreamFunction, WorkerFunction...
    user: str
    access_key_id: str
    secret_access_key: str
    policies: tuple[dict[str, Any], ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::123456789012:user/{self.user}"

    def env(self) -> dict[str, str]:
        """The credentials an execution environment of this function runs with."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def provision(
    endpoint: str, admin: Mapping[str, str], policies: Mapping[str, list[dict[str, Any]]], prefix: str, region: str
) -> dict[str, Identity]:
    """Create (or replace the key and policies of) one IAM user per function; ``{function: Identity}``."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=admin["access_key_id"],
        aws_secret_access_key=admin["secret_access_key"],
    )
    identities = {}
    try:
        for function, documents in policies.items():
            user = f"{prefix}{function}"
            try:
                iam.create_user(UserName=user)
            except iam.exceptions.EntityAlreadyExistsException:
                for name in iam.list_user_policies(UserName=user)["PolicyNames"]:
                    iam.delete_user_policy(UserName=user, PolicyName=name)
                for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            for i, document in enumerate(documents):
                iam.put_user_policy(UserName=user, PolicyName=f"policy-{i}", PolicyDocument=json.dumps(document))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            identities[function] = Identity(
                function, user, key["AccessKeyId"], key["SecretAccessKey"], tuple(documents)
            )
    finally:
        iam.close()
    return identities


def save(identities: Mapping[str, Identity], path: Path | str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({name: asdict(i) for name, i in identities.items()}, f)


def load(path: Path | str) -> dict[str, Identity]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {name: Identity(**{**fields, "policies": tuple(fields["policies"])}) for name, fields in data.items()}


class Denied(Exception):
    """The caller may not do this: ``code`` and ``message`` as the AWS service answers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Authorizer:
    def __init__(self, identities: Iterable[Identity]) -> None:
        self._by_key = {i.access_key_id: i for i in identities}

    def caller(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Identity:
        """The identity that signed this request; ``Denied`` if none did, or the signature is wrong."""
        authorization = headers.get("authorization", "")
        credential = _CREDENTIAL.search(authorization)
        if credential is None:
            raise Denied(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        key_id, _, region, service = credential.groups()
        identity = self._by_key.get(key_id)
        if identity is None:
            raise Denied(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if not _signature_matches(identity, method, url, headers, body, region, service, authorization):
            raise Denied(403, "InvalidSignatureException", "The request signature we calculated does not match.")
        return identity

    @staticmethod
    def allowed(identity: Identity, action: str, resource: str) -> bool:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        permitted = False
        for document in identity.policies:
            result = IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)
            if result == PermissionResult.DENIED:
                return False
            permitted = permitted or result == PermissionResult.PERMITTED
        return permitted

    def authorize(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, action: str, resource: str
    ) -> Identity:
        """The caller, if its policies allow ``action`` on ``resource``; ``Denied`` (logged at ERROR) if not."""
        identity = self.caller(method, url, headers, body)
        if not self.allowed(identity, action, resource):
            message = f"User: {identity.arn} is not authorized to perform: {action} on resource: {resource}"
            log.error("AccessDenied: %s (%s has no such grant in template.yaml)", message, identity.function)
            raise Denied(403, "AccessDeniedException", message)
        return identity


def _signature_matches(
    identity: Identity,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    service: str,
    authorization: str,
) -> bool:
    """Recompute the SigV4 signature with botocore's signer, as moto's server does."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = _SIGNED_HEADERS.search(authorization)
    signature = _SIGNATURE.search(authorization)
    if signed is None or signature is None or "x-amz-date" not in headers:
        return False
    names = signed.group(1).split(";")
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers.get(n, "") for n in names})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(identity.access_key_id, identity.secret_access_key), service, region)
    canonical = auth.canonical_request(request)
    return bool(auth.signature(auth.string_to_sign(request, canonical), request) == signature.group(1))
