"""
The sandbox's moto server, with IAM authorization that can tell one KMS key or secret from another.

Run with the project venv's Python:  .venv/bin/python test/sandbox/moto-iam.py -H 198.18.0.1 -p 5000

moto 5.2.5 in server mode enforces IAM once `INITIAL_NO_AUTH_ACTION_COUNT` requests have passed (or after
POST /moto-api/reset-auth with the new count): every request must be SigV4-signed by a known access key and
its action must be allowed by that identity's policies. Three gaps make that check too coarse to test
least-privilege KMS / Secrets Manager policies (read from moto/core/authorization.py and
moto/iam/access_control.py):

  1. KMS and Secrets Manager requests are authorized against Resource "*": a statement naming a key ARN or a
     secret ARN never matches, and one naming "*" matches every key and secret.
  2. Identity policies are evaluated without a request context, so Condition blocks never apply; and a
     failed condition on an Allow statement is treated as an explicit deny.
  3. Resource/Action wildcards are turned into regexes without escaping, so `secret:name-??????` (the
     documented way to match a secret's random suffix) is an invalid regex.

This wrapper patches exactly those three points, then runs moto's own server `main`:

  - the resource is the key ARN (from KeyId, an alias, or for Decrypt the key id inside the ciphertext blob)
    or the secret ARN (from SecretId; for CreateSecret the ARN-to-be); a KeyId naming no key in the region
    is left to moto, which answers NotFoundException as KMS does;
  - the request context holds `kms:EncryptionContext:<key>`, `kms:EncryptionContextKeys`,
    `kms:ResourceAliases`, `kms:CallerAccount` and `secretsmanager:SecretId`;
  - conditions are evaluated as AWS documents it for the operators our policies use: StringEquals,
    StringNotEquals, StringLike, StringNotLike (with ForAnyValue:/ForAllValues: and ...IfExists); a key
    missing from the context fails the condition (unless IfExists); an unknown operator fails it;
  - statement results: a Deny that applies wins; an Allow applies only when action, resource and every
    condition match; wildcards are `*` and `?` globs (Action case-insensitive);
  - a denied KMS / Secrets Manager call answers as those JSON-protocol services do (HTTP 400,
    `{"__type": "AccessDeniedException", "message": "User: <arn> is not authorized to perform: <action> on
    resource: <arn> ..."}`), not with moto's XML body, which the AWS SDK cannot parse.

Sandbox use only. Everything else is moto's behaviour.
"""

import base64
import fnmatch
import json
import re
import sys

from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, IAMRequestBase, PermissionResult


def glob_match(pattern, value, ignore_case=False):
    """IAM wildcards: `*` any run of characters, `?` one character; everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _as_list(v):
    if v is None:
        return None
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _single_match(base, expected, actual):
    if base in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if base in ("StringLike", "StringNotLike"):
        return glob_match(expected, actual)
    raise KeyError(base)


def condition_holds(operator, key, expected, context):
    """One condition key of one operator block, with AWS semantics."""
    if_exists = operator.endswith("IfExists")
    op = operator[: -len("IfExists")] if if_exists else operator
    qualifier = None
    if ":" in op:
        qualifier, op = op.split(":", 1)
    negated = op.startswith("StringNot")
    if op not in ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return False  # unsupported operator: never grants
    expected = [str(e) for e in _as_list(expected)]
    actual = _as_list(context.get(key))
    if actual is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated  # a missing key fails a positive match and passes a negated one
    def one(a):
        hit = any(_single_match(op, e, a) for e in expected)
        return not hit if negated else hit
    if qualifier == "ForAllValues":
        return all(one(a) for a in actual)
    if qualifier == "ForAnyValue":
        return any(one(a) for a in actual)
    return all(one(a) for a in actual) if negated else any(one(a) for a in actual)


def conditions_hold(conditions, context):
    for operator, block in (conditions or {}).items():
        for key, expected in block.items():
            if not condition_holds(operator, key, expected, context or {}):
                return False
    return True


def _element_matches(statement, element, value):
    patterns = _as_list(statement[element])
    ignore_case = element in ("Action", "NotAction")
    return any(glob_match(p, value, ignore_case) for p in patterns)


def statement_is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
    st = self._statement
    if "NotAction" in st:
        concerned = not _element_matches(st, "NotAction", action)
    else:
        concerned = _element_matches(st, "Action", action)
    if not concerned:
        return PermissionResult.NEUTRAL
    if self.is_unknown_principal(st.get("Principal")):
        return PermissionResult.NEUTRAL
    if principal and not self._check_principal(principal):
        return PermissionResult.NEUTRAL
    if st.get("Resource") is not None and not _element_matches(st, "Resource", resource):
        return PermissionResult.NEUTRAL
    if st.get("NotResource") is not None and _element_matches(st, "NotResource", resource):
        return PermissionResult.NEUTRAL
    if not conditions_hold(st.get("Condition"), incoming_condition_values):
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if st.get("Effect") == "Allow" else PermissionResult.DENIED


def _json_body(req):
    try:
        raw = req._body.decode("utf-8") if isinstance(req._body, (bytes, bytearray)) else (req._body or "")
        return json.loads(raw) if raw else {}
    except Exception:
        return {}


def _kms_backend(req):
    from moto.kms.models import kms_backends

    return kms_backends[req.account_id][req._region]


def _sm_backend(req):
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[req.account_id][req._region]


NO_SUCH_KEY = object()


def request_resource_and_context(req):
    """(resource ARN, condition context) of a KMS / Secrets Manager request; ("*", {}) otherwise."""
    service, _, op = req._action.partition(":")
    body = _json_body(req) if service in ("kms", "secretsmanager") else {}
    ctx = {"aws:PrincipalArn": req._access_key.arn}
    if service == "kms":
        ctx["kms:CallerAccount"] = req.account_id
        enc = body.get("EncryptionContext") or {}
        for k, v in enc.items():
            ctx[f"kms:EncryptionContext:{k}"] = v
        if enc:
            ctx["kms:EncryptionContextKeys"] = sorted(enc.keys())
        backend = _kms_backend(req)
        key_id = body.get("KeyId")
        if not key_id and op == "Decrypt" and body.get("CiphertextBlob"):
            try:
                from moto.kms.utils import _deserialize_ciphertext_blob

                key_id = _deserialize_ciphertext_blob(base64.b64decode(body["CiphertextBlob"])).key_id
            except Exception:
                key_id = None
        if key_id:
            try:
                key = backend.describe_key(key_id)
            except Exception:
                # No such key (or alias) in this region: let moto answer NotFoundException, as KMS does.
                return NO_SUCH_KEY, ctx
            ctx["kms:ResourceAliases"] = sorted(key.aliases.keys())
            return key.arn, ctx
        return "*", ctx
    if service == "secretsmanager":
        secret_id = body.get("SecretId")
        if secret_id:
            ctx["secretsmanager:SecretId"] = secret_id
            try:
                return _sm_backend(req).describe_secret(secret_id).arn, ctx
            except Exception:
                return f"arn:aws:secretsmanager:{req._region}:{req.account_id}:secret:{secret_id}-000000", ctx
        if op == "CreateSecret" and body.get("Name"):
            return f"arn:aws:secretsmanager:{req._region}:{req.account_id}:secret:{body['Name']}-000000", ctx
        return "*", ctx
    return None, ctx


def check_action_permitted(self, resource):
    if self._action == "sts:GetCallerIdentity":
        return
    own_resource, context = request_resource_and_context(self)
    if own_resource is NO_SUCH_KEY:
        return
    if own_resource is not None:
        resource = own_resource
    self._krypton_resource = resource
    permitted = False
    for policy in self._access_key.collect_policies():
        result = IAMPolicy(policy).is_action_permitted(self._action, resource, None, context)
        if result == PermissionResult.DENIED:
            self._raise_access_denied()
        elif result == PermissionResult.PERMITTED:
            permitted = True
    if self._is_assuming_role_operation(resource):
        permitted = permitted and self._check_role_trust_relationship(resource)
    if not permitted:
        self._raise_access_denied()


_moto_raise_access_denied = access_control.IAMRequest._raise_access_denied


def raise_access_denied(self):
    if self._service in ("kms", "secretsmanager"):
        from moto.core.exceptions import JsonRESTError

        resource = getattr(self, "_krypton_resource", "*")
        raise JsonRESTError(
            "AccessDeniedException",
            f"User: {self._access_key.arn} is not authorized to perform: {self._action} on resource: {resource} "
            f"because no identity-based policy allows the {self._action} action",
        )
    _moto_raise_access_denied(self)


IAMPolicyStatement.is_action_permitted = statement_is_action_permitted
IAMRequestBase.check_action_permitted = check_action_permitted
access_control.IAMRequest._raise_access_denied = raise_access_denied
access_control.IAMPolicyStatement = IAMPolicyStatement

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
