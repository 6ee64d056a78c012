"""Member cockpit links: a touchpoint where the member is signed in hands them over to their cockpit."""

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status

from api.base import ApiView
from api.lookups import member_or_404
from api.schema import api_schema
from api.serializers import InputSerializer, validated
from common.errors import ApplicationError
from common.validation import field_error
from members.cockpit_links import cockpit_link_make
from members.models import Member
from rewards.cockpit.auth import next_path_allowed


class CockpitLinkInputSerializer(InputSerializer):
    next = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text=_("A path of the tenant's cockpit to open after signing in (`/cockpit/<tenant>/...`)."),
    )


class CockpitLinkOutputSerializer(serializers.Serializer):
    url = serializers.URLField(help_text=_("Opening it signs the member in to the cockpit, once."))
    expires_at = serializers.DateTimeField()


class MemberCockpitLinkApi(ApiView):
    required_scope = "read"

    @api_schema(
        summary="A one-time sign-in link to the member's cockpit",
        description="The URL is signed, names the tenant and the member and works once within "
        "COCKPIT_LINK_MINUTES (15 by default). Opening it signs the member in to the cockpit only (never the "
        "admin) and redirects to `next` or the cockpit home; an expired, used or altered link answers a page "
        "saying so (HTTP 403). A suspended or erased member gets no link.",
        request=CockpitLinkInputSerializer,
        responses={201: CockpitLinkOutputSerializer},
        errors={400: ["invalid_next"], 404: ["member_not_found"], 422: ["member_suspended", "member_erased"]},
        write=True,
        idempotent=True,
        tags=["members"],
    )
    def post(self, request, external_id):
        data = validated(CockpitLinkInputSerializer, request.data)
        next_path = data.get("next") or ""
        if next_path and not next_path_allowed(self.tenant, next_path):
            raise field_error(
                "invalid_next",
                "`next` is not a page of this cockpit.",
                "next",
                f"must start with /cockpit/{self.tenant.slug}/",
            )
        member = member_or_404(self.tenant, external_id)
        if member.status == Member.Status.SUSPENDED:
            raise ApplicationError("member_suspended", "This member is suspended: the cockpit is closed to them.")
        if member.status == Member.Status.ERASED:
            raise ApplicationError("member_erased", "This member's data was erased.")

        def render(link):
            path = reverse("cockpit:link", kwargs={"tenant_slug": self.tenant.slug, "token": link.token})
            body = {"url": request.build_absolute_uri(path), "expires_at": link.expires_at}
            return status.HTTP_201_CREATED, CockpitLinkOutputSerializer(body).data

        # Nothing is written: a retry with the same Idempotency-Key answers the same link (it still works once).
        return self.answer(render).response(cockpit_link_make(member=member, next_path=next_path))
