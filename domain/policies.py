"""Every policy a job can run, by the name its spec gives (``JobSpec.policy``)."""

from domain.lsts_policy import LstsPolicy
from domain.policy import Policy
from domain.spec import POLICIES
from domain.zeus_policy import ZeusPolicy

_BY_NAME: dict[str, Policy] = {policy.name: policy for policy in (ZeusPolicy(), LstsPolicy())}
assert tuple(_BY_NAME) == POLICIES, "every policy a spec may name has a module, and no other"


def policy_named(name: str) -> Policy:
    return _BY_NAME[name]
