"""Members (CRM sync): upsert, read, ledger, rewards, reward redemptions."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status
from rest_framework.response import Response

from api.base import ApiView
from api.lookups import member_or_404, reward_or_404
from api.pagination import CURSOR_PARAMETERS, ApiCursorPagination, SectionedCursorPagination, paginated
from api.schema import api_schema
from api.serializers import DateField, InputSerializer, LedgerEntrySerializer, TierRefSerializer, validated
from loyalty.ledger.selectors import entry_dict, ledger_entries, member_detail
from members.services import member_upsert
from rewards.selectors import STATUSES, member_reward_sections
from rewards.services.catalog import reward_purchase, reward_purchase_document


class ConsentInputSerializer(InputSerializer):
    unknown_fields = "refused"  # a misspelt channel would otherwise leave the member's consent unchanged

    email = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    push = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            raise serializers.ValidationError({name: [_("Unknown channel.")] for name in unknown})
        return super().to_internal_value(data)


class ConsentSerializer(serializers.Serializer):
    email = serializers.BooleanField()
    sms = serializers.BooleanField()
    push = serializers.BooleanField()


class ConsentChangedAtSerializer(serializers.Serializer):
    email = serializers.DateTimeField(allow_null=True)
    sms = serializers.DateTimeField(allow_null=True)
    push = serializers.DateTimeField(allow_null=True)


class MemberInputSerializer(InputSerializer):
    email = serializers.CharField(required=False, allow_blank=True, help_text=_("Required on create."))
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    country = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="ISO 3166 alpha-2")
    city = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    birth_date = DateField(required=False, allow_null=True)
    attributes = serializers.DictField(required=False, allow_null=True)
    marketing_consent = serializers.BooleanField(
        required=False, help_text=_("Sets every channel's consent (then `consent` sets the channels it names).")
    )
    consent = ConsentInputSerializer(required=False, help_text=_("Consent per channel; omitted channels stay."))
    referred_by = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text=_("External id or referral code of the referrer.")
    )


class ExpiringSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class PointsSummarySerializer(serializers.Serializer):
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    lifetime_earned = serializers.IntegerField()
    expiring = ExpiringSerializer(many=True)


class MemberOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)
    country = serializers.CharField(allow_blank=True)
    city = serializers.CharField(allow_blank=True)
    birth_date = serializers.DateField(allow_null=True)
    attributes = serializers.DictField()
    marketing_consent = serializers.BooleanField(help_text=_("True when the member consents on any channel."))
    consent = ConsentSerializer()
    consent_changed_at = ConsentChangedAtSerializer(help_text=_("When each channel's consent last changed."))
    status = serializers.ChoiceField(
        choices=["active", "suspended", "erased"],
        help_text=_("A suspended member's codes are refused (`member_suspended`) and their orders earn nothing."),
    )
    tier = TierRefSerializer(allow_null=True)
    points = PointsSummarySerializer()
    referral_code = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberApi(ApiView):
    required_scope = {"GET": "read", "PUT": "manage"}

    @api_schema(
        summary="Read a member",
        responses={200: MemberOutputSerializer},
        errors={404: ["member_not_found"]},
        tags=["members"],
    )
    def get(self, request, external_id):
        member = member_or_404(self.tenant, external_id)
        return Response(MemberOutputSerializer(member_detail(member)).data)

    @api_schema(
        summary="Create or update a member (CRM sync)",
        description="201 on create, 200 on update. Email is required on create. The external id of an erased "
        "member is 409 `member_erased`, unless the tenant lets erased members' ids be reused (then it creates a "
        "new member).",
        request=MemberInputSerializer,
        responses={200: MemberOutputSerializer, 201: MemberOutputSerializer},
        errors={400: ["invalid_member"], 404: ["member_not_found"], 409: ["member_erased"]},
        write=True,
        idempotent=True,
        tags=["members"],
    )
    def put(self, request, external_id):
        fields = validated(MemberInputSerializer, request.data)

        def render(result):
            member, created = result
            return (
                status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                MemberOutputSerializer(member_detail(member)).data,
            )

        answer = self.answer(render)
        return answer.response(member_upsert(tenant=self.tenant, external_id=external_id, answer=answer, **fields))


class MemberLedgerApi(ApiView):
    required_scope = "read"

    @api_schema(
        summary="A member's ledger entries, newest first",
        responses={200: paginated(LedgerEntrySerializer)},
        errors={400: ["validation_error"], 404: ["member_not_found", "not_found"]},
        parameters=CURSOR_PARAMETERS,
        tags=["members"],
    )
    def get(self, request, external_id):
        member = member_or_404(self.tenant, external_id)
        paginator = ApiCursorPagination(ordering=("-created_at", "-pk"))
        page = paginator.paginate_queryset(ledger_entries(member), request, view=self)
        return paginator.get_paginated_response(LedgerEntrySerializer([entry_dict(e) for e in page], many=True).data)


class MemberRewardSerializer(serializers.Serializer):
    code = serializers.CharField(allow_null=True)
    campaign = serializers.CharField(allow_null=True)
    campaign_name = serializers.CharField(allow_null=True, required=False)
    type = serializers.CharField(allow_null=True)
    value = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    points_cost = serializers.IntegerField(allow_null=True)
    id = serializers.CharField(required=False, help_text=_("Catalog rewards: the reward id to redeem."))
    name = serializers.CharField(required=False)
    redeemed_at = serializers.DateTimeField(required=False)
    discount = serializers.CharField(required=False)


class MemberRewardsQuerySerializer(InputSerializer):
    # `?status=` (empty) is the same as no status, as DRF reads an empty query value of an optional field.
    status = serializers.ChoiceField(choices=STATUSES, required=False, allow_blank=True)


class MemberRewardsApi(ApiView):
    required_scope = "read"

    @api_schema(
        summary="What the member can use now, holds, redeemed or let expire",
        description="Without `status`: available codes (newest first), running promotions, affordable catalog "
        "rewards (cheapest first), then redeemed codes (newest first), then expired codes. Cursor-paginated: "
        "follow `next` with the same `status`.",
        responses={200: paginated(MemberRewardSerializer)},
        errors={400: ["validation_error"], 404: ["member_not_found", "not_found"]},
        parameters=[MemberRewardsQuerySerializer, *CURSOR_PARAMETERS],
        tags=["members"],
    )
    def get(self, request, external_id):
        query = validated(MemberRewardsQuerySerializer, request.query_params)
        member = member_or_404(self.tenant, external_id)
        paginator = SectionedCursorPagination()
        items = paginator.paginate_sections(
            member_reward_sections(tenant=self.tenant, member=member, status=query.get("status") or None), request
        )
        return paginator.get_paginated_response(MemberRewardSerializer(items, many=True).data)


class RewardRedemptionInputSerializer(InputSerializer):
    reward = serializers.CharField(max_length=40, help_text=_("The catalog reward's id."))


class GiftCardCreditSerializer(serializers.Serializer):
    code = serializers.CharField()
    balance = serializers.CharField()


class RewardRedemptionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    reward = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    points = serializers.IntegerField()
    status = serializers.CharField()
    code = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    gift_card = GiftCardCreditSerializer(required=False)
    fulfilment_id = serializers.CharField(required=False)
    sku = serializers.CharField(required=False, allow_blank=True)
    cashback = serializers.CharField(required=False)


class MemberRewardRedemptionApi(ApiView):
    required_scope = "redeem"

    @api_schema(
        summary="Spend points on a catalog reward",
        description="Returns what was issued: a code, a gift card credit, a fulfilment id (product) or cashback.",
        request=RewardRedemptionInputSerializer,
        responses={201: RewardRedemptionOutputSerializer},
        errors={
            404: ["member_not_found", "reward_not_found"],
            422: ["points_insufficient", "reward_out_of_stock", "tier_required", "tenant_frozen", "member_suspended"],
        },
        write=True,
        idempotent=True,
        tags=["rewards"],
    )
    def post(self, request, external_id):
        data = validated(RewardRedemptionInputSerializer, request.data)
        member = member_or_404(self.tenant, external_id)
        reward = reward_or_404(self.tenant, data["reward"])
        answer = self.answer(
            lambda p: (status.HTTP_201_CREATED, RewardRedemptionOutputSerializer(reward_purchase_document(p)).data)
        )
        return answer.response(reward_purchase(tenant=self.tenant, member=member, reward=reward, answer=answer))
