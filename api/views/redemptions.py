"""Validation (changes nothing), redemption (all or nothing), rollback; the reward catalog."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from api.base import ApiView
from api.lookups import member_or_none, redemption_or_404
from api.pagination import CURSOR_PARAMETERS, ApiCursorPagination, paginated
from api.schema import api_schema
from api.serializers import InputSerializer, MoneyField, OrderItemSerializer, validated
from rewards.selectors import CATALOG_ORDERING, catalog_item, catalog_member, catalog_rewards
from rewards.services.redemption import redeem_with_answer, redemption_document, redemption_rollback, validate

REASONS = [
    "code_not_found",
    "campaign_disabled",
    "campaign_not_started",
    "campaign_ended",
    "outside_active_hours",
    "code_expired",
    "rule_not_met",
    "member_required",
    "not_assigned_to_member",
    "redemptions_total_exceeded",
    "redemptions_per_member_exceeded",
    "discount_budget_exceeded",
    "order_value_budget_exceeded",
    "stacking_not_allowed",
    "gift_card_insufficient_balance",
    "points_insufficient",
    "tenant_frozen",
    "member_suspended",
]


class CheckoutOrderSerializer(InputSerializer):
    amount = MoneyField(required=False)
    shipping = MoneyField(required=False)
    location = serializers.CharField(max_length=100, required=False, allow_blank=True)
    items = OrderItemSerializer(many=True, required=False)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "A code."},
            {
                "type": "object",
                "required": ["code"],
                "properties": {
                    "code": {"type": "string"},
                    "amount": {
                        "type": "string",
                        "format": "decimal",
                        "pattern": r"^\d{1,12}(?:\.\d{1,2})?$",
                        "description": "Gift card amount to use.",
                    },
                },
            },
        ]
    }
)
class CodeEntryField(serializers.JSONField):
    """A code, or `{"code", "amount"}` for a gift card."""


class ValidationInputSerializer(InputSerializer):
    member = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    order = CheckoutOrderSerializer()
    codes = serializers.ListField(child=CodeEntryField(), required=False, max_length=20)
    points = serializers.IntegerField(required=False, min_value=0, help_text=_("Points to spend as payment."))


class RedemptionInputSerializer(ValidationInputSerializer):
    order_id = serializers.CharField(max_length=100)
    channel = serializers.CharField(max_length=50, required=False, allow_blank=True)


class OrderTotalsSerializer(serializers.Serializer):
    amount = serializers.CharField()
    discount = serializers.CharField()
    gift_cards = serializers.CharField()
    points_value = serializers.CharField()
    total = serializers.CharField()


class CodeResultSerializer(serializers.Serializer):
    code = serializers.CharField()
    valid = serializers.BooleanField()
    discount = serializers.CharField(required=False)
    amount = serializers.CharField(required=False)
    balance_after = serializers.CharField(required=False)
    free_shipping = serializers.BooleanField(required=False)
    free_items = serializers.ListField(child=serializers.DictField(), required=False)
    reason = serializers.ChoiceField(choices=REASONS, required=False)
    message = serializers.CharField(required=False)
    details = serializers.DictField(required=False)
    campaign = serializers.CharField(required=False)
    campaign_name = serializers.CharField(required=False)


class PromotionResultSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    campaign_name = serializers.CharField()
    discount = serializers.CharField()


class PointsResultSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    value = serializers.CharField()
    valid = serializers.BooleanField(required=False)
    reason = serializers.CharField(required=False)
    message = serializers.CharField(required=False)
    details = serializers.DictField(required=False)


class ValidationOutputSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text=_("True only when every code is valid together."))
    order = OrderTotalsSerializer()
    codes = CodeResultSerializer(many=True)
    promotions = PromotionResultSerializer(many=True)
    points = PointsResultSerializer()


def _checkout(data: dict) -> dict:
    return {
        "order": dict(data["order"], items=[dict(i) for i in data["order"].get("items") or []]),
        "codes": list(data.get("codes") or []),
        "points": data.get("points") or 0,
    }


class ValidationApi(ApiView):
    required_scope = "redeem"
    idempotent = False  # changes nothing

    @api_schema(
        summary="Check an order against codes, promotions and points (changes nothing)",
        request=ValidationInputSerializer,
        responses={200: ValidationOutputSerializer},
        errors={400: ["validation_error"], 404: ["member_not_found"]},
        write=True,
        tags=["redemptions"],
    )
    def post(self, request):
        data = validated(ValidationInputSerializer, request.data)
        member = member_or_none(self.tenant, data.get("member"))
        result = validate(
            tenant=self.tenant, member=member, channel="api", integration=self.integration, **_checkout(data)
        )
        # `as_dict()` is already the contract's body, field for field (ValidationOutputSerializer documents it).
        return Response(result.as_dict())


class RedemptionLineSerializer(serializers.Serializer):
    code = serializers.CharField(allow_null=True)
    campaign = serializers.CharField()
    kind = serializers.CharField()
    discount = serializers.CharField()
    redemption_id = serializers.CharField()


class RedemptionPointsSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    value = serializers.CharField()


class RedemptionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    order_id = serializers.CharField()
    member = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    codes = RedemptionLineSerializer(many=True)
    order = OrderTotalsSerializer()
    points = RedemptionPointsSerializer()
    created_at = serializers.DateTimeField()


class RedemptionCreateApi(ApiView):
    required_scope = "redeem"
    idempotency_deferred = True  # redeem stores its answer, success or refusal, with its writes

    @api_schema(
        summary="Redeem codes, promotions and points on an order, all or nothing",
        description="422 `redemption_failed` carries the validation body (per-code reasons) in `details`; "
        "nothing is redeemed then.",
        request=RedemptionInputSerializer,
        responses={201: RedemptionOutputSerializer},
        errors={400: ["validation_error"], 404: ["member_not_found"], 422: ["redemption_failed"]},
        write=True,
        idempotent=True,
        tags=["redemptions"],
    )
    def post(self, request):
        data = validated(RedemptionInputSerializer, request.data)
        member = member_or_none(self.tenant, data.get("member"))
        # The service stored the contract's body as it answered (RedemptionOutputSerializer documents it):
        # no second read of the lines just written. The answer to retries commits with the redemption.
        answer = self.answer(lambda r: (status.HTTP_201_CREATED, r.result))
        redemption = redeem_with_answer(
            answer=answer,
            refused=answer.refusal,  # a refusal counts the failure: its 422 is stored with that count
            tenant=self.tenant,
            member=member,
            order_id=data["order_id"],
            channel=data.get("channel") or "api",
            integration=self.integration,
            **_checkout(data),
        )
        return answer.response(redemption)


class RollbackInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RedemptionRollbackApi(ApiView):
    required_scope = "redeem"

    @api_schema(
        summary="Undo a redemption",
        description="Usage counts, budgets, gift card balances and points are restored; a second rollback is 409.",
        request=RollbackInputSerializer,
        responses={200: RedemptionOutputSerializer},
        errors={404: ["redemption_not_found"], 409: ["already_rolled_back"]},
        write=True,
        idempotent=True,
        tags=["redemptions"],
    )
    def post(self, request, redemption_id):
        data = validated(RollbackInputSerializer, request.data)
        redemption = redemption_or_404(self.tenant, redemption_id)
        answer = self.answer(lambda r: (status.HTTP_200_OK, RedemptionOutputSerializer(redemption_document(r)).data))
        return answer.response(redemption_rollback(redemption=redemption, reason=data["reason"], answer=answer))


class CatalogQuerySerializer(InputSerializer):
    member = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text=_("External id: adds `affordable`.")
    )


class CatalogRewardSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["coupon", "gift_card_credit", "product", "cashback"])
    points_cost = serializers.IntegerField()
    value = serializers.CharField(allow_null=True)
    stock = serializers.IntegerField(allow_null=True, help_text=_("Null: unlimited."))
    in_stock = serializers.BooleanField()
    tiers = serializers.ListField(child=serializers.CharField(), help_text=_("Tier restriction (empty: all)."))
    eligible = serializers.BooleanField(allow_null=True)
    affordable = serializers.BooleanField(allow_null=True)
    campaign = serializers.CharField(allow_null=True)


class RewardCatalogApi(ApiView):
    required_scope = "read"

    @api_schema(
        summary="The reward catalog (with `affordable` for a member)",
        description="Active rewards, cheapest first. Cursor-paginated: follow `next` (it keeps `member`).",
        responses={200: paginated(CatalogRewardSerializer)},
        errors={400: ["validation_error"], 404: ["member_not_found", "not_found"]},
        parameters=[CatalogQuerySerializer, *CURSOR_PARAMETERS],
        tags=["rewards"],
    )
    def get(self, request):
        query = validated(CatalogQuerySerializer, request.query_params)
        member = member_or_none(self.tenant, query.get("member"))
        viewer = catalog_member(tenant=self.tenant, member=member) if member is not None else None
        paginator = ApiCursorPagination(ordering=CATALOG_ORDERING)
        page = paginator.paginate_queryset(catalog_rewards(tenant=self.tenant), request, view=self)
        items = [catalog_item(reward, viewer) for reward in page]
        return paginator.get_paginated_response(CatalogRewardSerializer(items, many=True).data)
