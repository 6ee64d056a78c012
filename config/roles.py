"""Staff roles as groups with model permissions; per-object rights come from django-guardian.

Rules are patterns over "<app_label>.<model>.<codename>"; a leading "-" removes what earlier patterns
granted. Patterns rather than lists, so that permissions of models added later fall into their role.
Tenant access is never a role: non-Admin staff are granted `members.access_tenant` per tenant.
"""

from fnmatch import fnmatchcase

from django.contrib.auth.models import Group, Permission

from loyalty.models import AdjustmentLimit

# The points ledger's pages (accounts, entries, lots, pending points, expiry warnings), read-only.
LEDGER_VIEW = [
    f"loyalty.{model}.view_*"
    for model in ("account", "ledgerentry", "pointlot", "lotconsumption", "pendingpoints", "expirywarning")
]

# Puts one member's story right; must never be able to create or launch campaigns.
SUPPORT_AGENT = [
    "members.member.view_*",
    "members.member.change_*",
    "members.*event.view_*",
    "members.erasurerequest.view_*",  # carrying one out is the Admins' (or an object permission)
    "loyalty.*.view_*",
    "integrations.*.view_*",
    "rewards.*.view_*",
    "loyalty.*.adjust_*",
    "loyalty.membertier.assign_*",
    "rewards.*.rollback_*",
    "rewards.*.apply_*",
    "campaigns.*.view_*",
    "campaigns.publication.add_*",
    "-members.tenant.*",
    "-integrations.*integrationapikey.*",  # API keys, integrations and webhooks, with their history
    "-integrations.*integration.*",
    "-integrations.*webhookendpoint.*",
]

ROLE_RULES: dict[str, list[str]] = {
    "Admin": ["*"],
    "Marketer": [
        "campaigns.*",
        "members.*.view_*",
        "loyalty.*.view_*",
        "integrations.*.view_*",
        "rewards.*.view_*",
        "rewards.reward.*",
        "reports.*",
        "members.segment.*",
        "-members.tenant.*",
        "-reports.auditentry.*",  # the audit page: Admins and Analysts
        "-campaigns.campaign.*_every_campaign",  # their own campaigns and those granted to them
        "-integrations.*integrationapikey.*",  # a key's id holds its hash: API keys are the Admins' alone
    ],
    # Builds and edits campaigns but does not launch them, delete them or touch their budgets' kill switch.
    "Junior marketer": [
        "campaigns.*.view_*",
        "campaigns.*.add_*",
        "campaigns.*.change_*",
        "-campaigns.*.enable_*",
        "-campaigns.campaign.*_every_campaign",
        "members.*.view_*",
        "rewards.*.view_*",
        *LEDGER_VIEW,
        "reports.*.view_*",
        "-members.tenant.*",
        "-reports.auditentry.*",
    ],
    "Support agent": SUPPORT_AGENT,
    # A support agent who also decides the requests above other agents' limits (four eyes).
    "Support lead": [*SUPPORT_AGENT, "rewards.approvalrequest.approve_*"],
    # Sees lists and reports; not staff accounts (password hashes, who holds which right) nor sessions.
    "Analyst": [
        "*.view_*",
        "reports.*",
        "-members.tenant.access_*",
        "-auth.*",
        "-guardian.*",
        "-sessions.*",
        "-integrations.*integrationapikey.*",
    ],
}


def permissions_for(role: str, permissions: list[Permission]) -> list[Permission]:
    granted: dict[int, Permission] = {}
    for rule in ROLE_RULES[role]:
        remove = rule.startswith("-")
        pattern = rule.lstrip("-")
        parts = pattern.split(".")
        for perm in permissions:
            key = f"{perm.content_type.app_label}.{perm.content_type.model}.{perm.codename}"
            # "*.view_*" style patterns name app and codename only.
            target = key if len(parts) != 2 else f"{perm.content_type.app_label}.{perm.codename}"
            if fnmatchcase(target, pattern):
                if remove:
                    granted.pop(perm.pk, None)
                else:
                    granted[perm.pk] = perm
    return list(granted.values())


# Points a role may adjust on its own (per adjustment, per day) and apology coupons it may give per day, unless an
# admin set other figures; above them the change waits for a second person. Roles not listed here have no limit.
DEFAULT_ADJUSTMENT_LIMITS = {"Support agent": (500, 2000, 10), "Support lead": (5000, 20000, 50)}


def sync_roles() -> dict[str, int]:
    """Create the role groups and set exactly their permissions; safe to run any number of times.

    Default adjustment limits are created once and then left as the admins set them.
    """
    permissions = list(Permission.objects.select_related("content_type"))
    counts = {}
    for role in ROLE_RULES:
        group, _ = Group.objects.get_or_create(name=role)
        perms = permissions_for(role, permissions)
        group.permissions.set(perms)
        counts[role] = len(perms)
        if role in DEFAULT_ADJUSTMENT_LIMITS:
            per_action, per_day, apologies = DEFAULT_ADJUSTMENT_LIMITS[role]
            AdjustmentLimit.objects.get_or_create(
                group=group, defaults={"per_action": per_action, "per_day": per_day, "apologies_per_day": apologies}
            )
    return counts
