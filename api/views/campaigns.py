"""Programmable campaigns (create, read, update, enable, disable, stats) and code publications."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from api.base import ApiView
from api.lookups import campaign_or_404, member_or_404
from api.schema import api_schema
from api.serializers import InputSerializer, TimeField, raw_object, validated
from campaigns.models import Channel
from campaigns.selectors import campaign_document, campaign_stats, publication_document
from campaigns.services import (
    campaign_create,
    campaign_disable,
    campaign_enable,
    campaign_update,
    publication_create,
)

CAMPAIGN_TYPES = ["discount", "gift_card", "promotion", "referral", "loyalty_reward"]


# The contract's channels: "support" is the admin's own (apology coupons), not a touchpoint's.
TOUCHPOINT_CHANNELS = [c for c in Channel.values if c != Channel.SUPPORT]


@extend_schema_field({"type": "string", "enum": CAMPAIGN_TYPES}, component_name="CampaignType")
class CampaignTypeField(serializers.ChoiceField):
    """One schema component for the campaign types of both the create and the update body."""

    def __init__(self, **kwargs):
        super().__init__(choices=CAMPAIGN_TYPES, **kwargs)


class CampaignInputSerializer(InputSerializer):
    # The campaign document (API.md, "Campaigns") for an update: every field optional. The service checks
    # the whole document exactly as the admin does, and refuses keys it does not know.
    unknown_fields = "refused"

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    type = CampaignTypeField(required=False, help_text=_("Required on create."))
    enabled = serializers.BooleanField(required=False)
    discount = serializers.DictField(
        required=False, allow_null=True, help_text=_('{"type": "percent|amount|free_shipping|unit|bogo|volume", ...}')
    )
    gift_card = serializers.DictField(required=False, allow_null=True, help_text=_('{"amount": "50.00"}'))
    referral = serializers.DictField(required=False, allow_null=True)
    starts_at = TimeField(required=False, allow_null=True)
    ends_at = TimeField(required=False, allow_null=True)
    active_hours = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    rule = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    limits = serializers.DictField(required=False, allow_null=True)
    stacking = serializers.DictField(required=False, allow_null=True)
    codes = serializers.DictField(
        required=False, allow_null=True, help_text=_('{"count": 1000, "pattern": "SPR-####-????"} or {"code": "X"}')
    )
    circuit_breaker = serializers.DictField(required=False, allow_null=True)
    priority = serializers.IntegerField(required=False)


class CampaignCreateInputSerializer(CampaignInputSerializer):
    """A new campaign's document: `name` and `type` are required."""

    name = serializers.CharField(max_length=200)
    type = CampaignTypeField()


class CampaignStatsSerializer(serializers.Serializer):
    published = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    redemptions_failed = serializers.IntegerField()
    discount_total = serializers.CharField()
    order_value_total = serializers.CharField()


class CampaignCodesSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text=_("Codes made so far."))
    code = serializers.CharField(allow_null=True, help_text=_("The shared code, if any."))
    pattern = serializers.CharField(allow_null=True)


class CampaignOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    type = serializers.CharField()
    status = serializers.CharField(help_text=_("active, scheduled, ended, disabled, paused, exhausted"))
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    discount = serializers.DictField(allow_null=True)
    gift_card = serializers.DictField(required=False)
    referral = serializers.DictField(required=False, allow_null=True)
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    active_hours = serializers.ListField(child=serializers.DictField(), allow_null=True)
    rule = serializers.CharField(allow_blank=True, allow_null=True)
    limits = serializers.DictField()
    stacking = serializers.DictField()
    codes = CampaignCodesSerializer()
    circuit_breaker = serializers.DictField()
    stats = CampaignStatsSerializer()
    created_at = serializers.DateTimeField(allow_null=True)


def _campaign_body(campaign):
    return CampaignOutputSerializer(campaign_document(campaign)).data


def _campaign_answer(campaign):
    return status.HTTP_200_OK, _campaign_body(campaign)


class CampaignCreateApi(ApiView):
    required_scope = "manage"

    @api_schema(
        summary="Create a campaign",
        description="201 with the campaign; bad input is 400 with the field errors in `details`, nothing created.",
        request=CampaignCreateInputSerializer,
        responses={201: CampaignOutputSerializer},
        errors={400: ["validation_error"]},
        write=True,
        idempotent=True,
        tags=["campaigns"],
    )
    def post(self, request):
        document = raw_object(CampaignCreateInputSerializer, request.data)
        answer = self.answer(lambda c: (status.HTTP_201_CREATED, _campaign_body(c)))
        return answer.response(campaign_create(tenant=self.tenant, data=document, answer=answer))


class CampaignApi(ApiView):
    required_scope = {"GET": "read", "PATCH": "manage"}

    @api_schema(
        summary="Read a campaign",
        responses={200: CampaignOutputSerializer},
        errors={404: ["campaign_not_found"]},
        tags=["campaigns"],
    )
    def get(self, request, campaign_id):
        return Response(_campaign_body(campaign_or_404(self.tenant, campaign_id)))

    @api_schema(
        summary="Update a campaign (only the fields given)",
        description='`codes: {"count", "pattern"}` adds codes; `enabled` enables or disables.',
        request=CampaignInputSerializer,
        responses={200: CampaignOutputSerializer},
        errors={400: ["validation_error"], 404: ["campaign_not_found"]},
        write=True,
        idempotent=True,
        tags=["campaigns"],
    )
    def patch(self, request, campaign_id):
        document = raw_object(CampaignInputSerializer, request.data, partial=True)
        campaign = campaign_or_404(self.tenant, campaign_id)
        answer = self.answer(_campaign_answer)
        return answer.response(campaign_update(campaign=campaign, data=document, answer=answer))


class CampaignDisableInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class CampaignEnableApi(ApiView):
    required_scope = "manage"

    @api_schema(
        summary="Enable a campaign",
        request=None,
        responses={200: CampaignOutputSerializer},
        errors={404: ["campaign_not_found"]},
        idempotent=True,
        tags=["campaigns"],
    )
    def post(self, request, campaign_id):
        campaign = campaign_or_404(self.tenant, campaign_id)
        answer = self.answer(_campaign_answer)
        return answer.response(campaign_enable(campaign=campaign, answer=answer))


class CampaignDisableApi(ApiView):
    required_scope = "manage"

    @api_schema(
        summary="Disable a campaign (the kill switch)",
        description="From the commit on, the campaign's codes fail validation with `campaign_disabled`.",
        request=CampaignDisableInputSerializer,
        responses={200: CampaignOutputSerializer},
        errors={404: ["campaign_not_found"]},
        write=True,
        idempotent=True,
        tags=["campaigns"],
    )
    def post(self, request, campaign_id):
        data = validated(CampaignDisableInputSerializer, request.data)
        campaign = campaign_or_404(self.tenant, campaign_id)
        answer = self.answer(_campaign_answer)
        reason = data["reason"] or "disabled by API"
        return answer.response(campaign_disable(campaign=campaign, reason=reason, answer=answer))


class CampaignStatsApi(ApiView):
    required_scope = "read"

    @api_schema(
        summary="A campaign's counters",
        responses={200: CampaignStatsSerializer},
        errors={404: ["campaign_not_found"]},
        tags=["campaigns"],
    )
    def get(self, request, campaign_id):
        return Response(CampaignStatsSerializer(campaign_stats(campaign_or_404(self.tenant, campaign_id))).data)


class PublicationInputSerializer(InputSerializer):
    campaign = serializers.CharField(max_length=40, help_text=_("The campaign id."))
    member = serializers.CharField(max_length=100, help_text=_("The member's external id."))
    channel = serializers.ChoiceField(choices=TOUCHPOINT_CHANNELS, default=Channel.API)


class PublicationOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    campaign = serializers.CharField()
    member = serializers.CharField()
    channel = serializers.CharField()
    published_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class PublicationCreateApi(ApiView):
    required_scope = "earn"

    @api_schema(
        summary="Give a member a code of a campaign",
        description="201 with a new code; 200 with the code the member already holds (unredeemed, unexpired).",
        request=PublicationInputSerializer,
        responses={201: PublicationOutputSerializer, 200: PublicationOutputSerializer},
        errors={
            404: ["campaign_not_found", "member_not_found"],
            422: ["campaign_ended", "campaign_disabled", "no_codes_left", "member_suspended"],
        },
        write=True,
        idempotent=True,
        tags=["distribution"],
    )
    def post(self, request):
        data = validated(PublicationInputSerializer, request.data)
        campaign = campaign_or_404(self.tenant, data["campaign"])
        member = member_or_404(self.tenant, data["member"])

        def render(result):
            publication, created = result
            return (
                status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                PublicationOutputSerializer(publication_document(publication)).data,
            )

        answer = self.answer(render)
        return answer.response(
            publication_create(
                tenant=self.tenant, campaign=campaign, member=member, channel=data["channel"], answer=answer
            )
        )
