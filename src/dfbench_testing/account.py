"""What moto cannot answer about an account, answered here as AWS answers it: EC2's vCPU quotas in
Service Quotas (moto knows only VPC's) and IAM's policy simulator (moto has none)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from dfbench_testing.wire import Body, error_response, json_response

# AWS's defaults for a new account, as GetAWSDefaultServiceQuota answers them.
# https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetAWSDefaultServiceQuota.html
DEFAULT_EC2_QUOTAS = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0),
}


class ServiceQuotas:
    """GetServiceQuota and GetAWSDefaultServiceQuota for EC2's vCPU quotas. ``applied`` holds the
    values the account was granted; a quota without one is answered, as AWS answers it, with
    NoSuchResourceException by GetServiceQuota and its default by GetAWSDefaultServiceQuota."""

    def __init__(self, applied: dict[str, float] | None = None) -> None:
        self.applied = dict(applied or {})

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name == "service-quotas":
            client.meta.events.register_first("before-send.service-quotas", self._answer)

    def _answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[1]
        params = json.loads(request.body or b"{}")
        code = params.get("QuotaCode", "")
        if params.get("ServiceCode") != "ec2" or code not in DEFAULT_EC2_QUOTAS:
            return None
        name, default = DEFAULT_EC2_QUOTAS[code]
        if operation == "GetServiceQuota":
            if code not in self.applied:
                return error_response("service-quotas", "NoSuchResourceException",
                                      "The request failed because the specified resource does not exist.", 400)
            value = self.applied[code]
        elif operation == "GetAWSDefaultServiceQuota":
            value = default
        else:
            return None
        return json_response({"Quota": {
            "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)", "QuotaCode": code,
            "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:ec2/{code}", "QuotaName": name,
            "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False}})


class PolicySimulator:
    """SimulatePrincipalPolicy (moto lacks it): every action allowed except those in ``denied``
    (implicitDeny, as for an action no policy grants); ``refuse`` answers AccessDenied instead, as
    for a caller without iam:SimulatePrincipalPolicy. The response is IAM's Query-protocol XML.
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html"""

    def __init__(self, denied: set[str] | None = None, *, refuse: bool = False) -> None:
        self.denied = set(denied or ())
        self.refuse = refuse
        self.principals: list[str] = []

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name == "iam":
            client.meta.events.register_first("before-send.iam.SimulatePrincipalPolicy", self._answer)

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        params = urllib.parse.parse_qs(body)
        principal = params["PolicySourceArn"][0]
        self.principals.append(principal)
        if self.refuse:
            return error_response("iam", "AccessDenied", f"User: {principal} is not authorized to perform: "
                                  "iam:SimulatePrincipalPolicy", 403)
        actions = [values[0] for key, values in sorted(params.items(), key=lambda kv: _member_index(kv[0]))
                   if key.startswith("ActionNames.member.")]
        members = "".join(
            f"<member><EvalActionName>{action}</EvalActionName><EvalResourceName>*</EvalResourceName>"
            f"<EvalDecision>{'implicitDeny' if action in self.denied else 'allowed'}</EvalDecision>"
            "<MatchedStatements/><MissingContextValues/></member>" for action in actions)
        xml = ('<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
               f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}"
               "</EvaluationResults></SimulatePrincipalPolicyResult>"
               f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
               "</SimulatePrincipalPolicyResponse>")
        return AWSResponse("https://iam.amazonaws.com/", 200, {"content-type": "text/xml"}, Body(xml.encode()))


def _member_index(key: str) -> int:
    return int(key.rsplit(".", 1)[1]) if key.startswith("ActionNames.member.") else 0
