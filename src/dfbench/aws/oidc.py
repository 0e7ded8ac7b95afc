"""An IAM OpenID Connect identity provider: GitHub Actions' (token.actions.githubusercontent.com),
which lets a workflow exchange its OIDC token for a role's credentials, no key stored anywhere
(https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/configuring-openid-connect-in-amazon-web-services).

An account holds at most one provider per issuer URL, shared by every role that trusts it: one
made by someone else is used as it is, and deleted only when dfbench made it (its dfbench:managed
tag) and no role trusts it any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import is_managed, tag_dict, tag_list
from dfbench.errors import ConfigError, error_code
from dfbench.models import Change, ChangeSet

GITHUB_ISSUER = "token.actions.githubusercontent.com"
# The audience configure-aws-credentials asks GitHub to put in the token.
STS_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class OidcProvider:
    arn: str
    url: str
    client_ids: tuple[str, ...]
    tags: dict[str, str]

    @property
    def managed(self) -> bool:
        return is_managed(self.tags)


def provider_arn(partition: str, account: str, issuer: str = GITHUB_ISSUER) -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{issuer}"


def find_oidc_provider(iam: Any, arn: str) -> OidcProvider | None:
    try:
        answer = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise
    return OidcProvider(arn=arn, url=str(answer.get("Url", "")), client_ids=tuple(answer.get("ClientIDList", [])),
                        tags=tag_dict(answer.get("Tags")))


def ensure_oidc_provider(iam: Any, *, arn: str, issuer: str, audience: str, tags: dict[str, str],
                         found: OidcProvider | None, changes: ChangeSet) -> None:
    """The provider, created when absent; one of dfbench's missing the audience gets it added.
    The thumbprint list is left out: IAM no longer uses thumbprints for GitHub's issuer, whose
    certificate it checks against its own trusted CAs
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc_verify-thumbprint.html)."""
    if found is None:
        changes.make(Change(action="create", resource="oidc-provider", name=issuer, detail=f"audience {audience}"),
                     lambda: _create(iam, issuer, audience, tags))
        return
    if audience in found.client_ids:
        return
    if not found.managed:
        raise ConfigError(f"The account's identity provider {issuer} (not dfbench's) does not accept the audience "
                          f"{audience}: add it with `aws iam add-client-id-to-open-id-connect-provider "
                          f"--open-id-connect-provider-arn {arn} --client-id {audience}`, then run this again.")
    changes.make(Change(action="update", resource="oidc-provider", name=issuer, detail=f"add audience {audience}"),
                 lambda: iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn,
                                                                       ClientID=audience))


def _create(iam: Any, issuer: str, audience: str, tags: dict[str, str]) -> None:
    try:
        iam.create_open_id_connect_provider(Url=f"https://{issuer}", ClientIDList=[audience], Tags=tag_list(tags))
    except ClientError as error:
        # A retried request whose first attempt went through: the provider is the one we asked for.
        if error_code(error) != "EntityAlreadyExists":
            raise


def delete_oidc_provider(iam: Any, provider: OidcProvider) -> None:
    try:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider.arn)
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
