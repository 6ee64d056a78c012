"""Earning: paid orders, returns, custom events; and the program declaration."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status
from rest_framework.response import Response

from api.base import ApiView
from api.lookups import program_or_404
from api.schema import api_schema
from api.serializers import (
    InputSerializer,
    LedgerEntrySerializer,
    MoneyField,
    OrderItemSerializer,
    TierRefSerializer,
    TimeField,
    raw_object,
    validated,
)
from api.views.redemptions import CodeEntryField, RedemptionOutputSerializer
from common.errors import ApplicationError
from loyalty.selectors import program_document
from loyalty.services.earning import custom_event_record
from loyalty.services.program import program_declare
from loyalty.services.returns import order_return
from rewards.services.checkout import order_checkout


class OrderInputSerializer(InputSerializer):
    order_id = serializers.CharField(max_length=100)
    member = serializers.CharField(max_length=100, help_text=_("The member's external id."))
    amount = MoneyField()
    currency = serializers.CharField(max_length=3, help_text=_("The tenant's currency."))
    status = serializers.ChoiceField(choices=["paid"], default="paid")
    location = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    channel = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    occurred_at = TimeField(required=False, allow_null=True)
    items = OrderItemSerializer(many=True, required=False)
    codes = serializers.ListField(
        child=CodeEntryField(),
        required=False,
        max_length=20,
        help_text=_("Codes redeemed with the order, as in redemptions (needs the `redeem` scope too)."),
    )
    points = serializers.IntegerField(required=False, min_value=0, help_text=_("Points to spend as payment."))


def no_earning_reason() -> serializers.CharField:
    return serializers.CharField(
        required=False, help_text=_("Why nothing was earned: `member_suspended` (the member is suspended).")
    )


class OrderOutputSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    member = serializers.CharField()
    points_earned = serializers.IntegerField(help_text=_("Earned on the amount paid after discounts."))
    points_pending = serializers.IntegerField()
    entries = LedgerEntrySerializer(many=True)
    tier = TierRefSerializer(allow_null=True)
    reason = no_earning_reason()
    redemption = RedemptionOutputSerializer(required=False, help_text=_("Present when the order carried codes."))


class OrderCreateApi(ApiView):
    required_scope = "earn"
    idempotency_deferred = True  # the order's answer is stored with it; a twin's order is a replay

    @api_schema(
        summary="Record a paid order and earn points",
        description="201 with the points earned; the same `order_id` again is not counted twice (200 with the "
        "first result). With `codes` (or `points`), they are redeemed with the order in one transaction: points "
        "are earned on the amount after discounts, the 201 body adds `redemption`, and a refusal is 422 "
        "`redemption_failed` with nothing written. A referred member's first qualifying order rewards the referrer.",
        request=OrderInputSerializer,
        responses={201: OrderOutputSerializer, 200: OrderOutputSerializer},
        errors={
            400: ["invalid_order", "validation_error"],
            403: ["insufficient_scope"],
            404: ["member_not_found"],
            422: ["tenant_frozen", "redemption_failed"],
        },
        write=True,
        idempotent=True,
        tags=["earning"],
    )
    def post(self, request):
        data = validated(OrderInputSerializer, request.data)
        if (data.get("codes") or data.get("points")) and not request.auth.has_scope("redeem"):
            raise ApplicationError(
                "insufficient_scope", "This API key lacks the `redeem` scope.", {"required_scope": "redeem"}, 403
            )
        answer = self.answer(
            lambda r: (
                status.HTTP_201_CREATED if r.created else status.HTTP_200_OK,
                r.as_dict(),  # the contract's shape already (OrderOutputSerializer documents it)
            )
        )
        result = order_checkout(
            answer=answer,
            tenant=self.tenant,
            member=data["member"],
            order_id=data["order_id"],
            amount=data["amount"],
            currency=data["currency"],
            items=[dict(item) for item in data.get("items") or []],
            location=data["location"],
            channel=data["channel"] or self.integration.name,
            occurred_at=data.get("occurred_at"),
            codes=data.get("codes"),
            points=data.get("points") or 0,
            integration=self.integration,
        )
        return answer.response(result)


class ReturnItemSerializer(InputSerializer):
    sku = serializers.CharField(max_length=100)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)


class ReturnInputSerializer(InputSerializer):
    amount = MoneyField(required=False)
    items = ReturnItemSerializer(many=True, required=False)
    return_id = serializers.CharField(max_length=100, required=False, help_text=_("Makes the return idempotent."))


class ReturnOutputSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    return_id = serializers.CharField()
    amount = serializers.CharField()
    points_reversed = serializers.IntegerField()
    points_cancelled = serializers.IntegerField(help_text=_("Pending points cancelled."))
    debt_points = serializers.IntegerField(help_text=_("Points that could not be taken back (already spent)."))
    entries = LedgerEntrySerializer(many=True)


class OrderReturnApi(ApiView):
    required_scope = "earn"

    @api_schema(
        summary="Return part of an order: reverse the points earned on it",
        description="Give `amount` or `items`. Idempotent per `return_id` (200 with the first result).",
        request=ReturnInputSerializer,
        responses={201: ReturnOutputSerializer, 200: ReturnOutputSerializer},
        errors={400: ["invalid_return"], 404: ["order_not_found"], 422: ["return_exceeds_order", "tenant_frozen"]},
        write=True,
        idempotent=True,
        tags=["earning"],
    )
    def post(self, request, order_id):
        data = validated(ReturnInputSerializer, request.data)
        answer = self.answer(
            lambda r: (
                status.HTTP_201_CREATED if r.created else status.HTTP_200_OK,
                ReturnOutputSerializer(r.as_dict()).data,
            )
        )
        result = order_return(
            answer=answer,
            tenant=self.tenant,
            order_id=order_id,
            amount=data.get("amount"),
            items=[dict(item) for item in data["items"]] if data.get("items") else None,
            return_id=data.get("return_id"),
        )
        return answer.response(result)


class EventInputSerializer(InputSerializer):
    member = serializers.CharField(max_length=100)
    event = serializers.CharField(max_length=100, help_text=_("Such as newsletter_subscribed, review_written."))
    metadata = serializers.DictField(required=False, allow_null=True)
    occurred_at = TimeField(required=False, allow_null=True)


class EventOutputSerializer(serializers.Serializer):
    event = serializers.CharField()
    points_earned = serializers.IntegerField()
    points_pending = serializers.IntegerField()
    entries = LedgerEntrySerializer(many=True)
    reason = no_earning_reason()


class EventCreateApi(ApiView):
    required_scope = "earn"

    @api_schema(
        summary="Record a custom event and earn its points",
        description="Per-rule caps hold under concurrent calls.",
        request=EventInputSerializer,
        responses={201: EventOutputSerializer},
        errors={400: ["invalid_event"], 404: ["member_not_found"], 422: ["tenant_frozen"]},
        write=True,
        idempotent=True,
        tags=["earning"],
    )
    def post(self, request):
        data = validated(EventInputSerializer, request.data)
        answer = self.answer(lambda r: (status.HTTP_201_CREATED, EventOutputSerializer(r.as_dict()).data))
        result = custom_event_record(
            answer=answer,
            tenant=self.tenant,
            member=data["member"],
            event=data["event"],
            metadata=data.get("metadata"),
            occurred_at=data.get("occurred_at"),
        )
        return answer.response(result)


class ProgramDocumentSerializer(serializers.Serializer):
    """The whole program as one document (see API.md, "Program configuration")."""

    name = serializers.CharField(max_length=200)
    currency = serializers.CharField(max_length=3)
    points_name = serializers.CharField(max_length=50, required=False)
    expiry = serializers.DictField(required=False, help_text=_('{"policy": "never|days|rolling_quarter|...", ...}'))
    points_value = serializers.DictField(required=False, help_text=_('{"points": 100, "amount": "1.00"}'))
    qualification_window_months = serializers.IntegerField(required=False, min_value=1)
    expiry_warning_days = serializers.IntegerField(required=False, min_value=0)
    active = serializers.BooleanField(required=False)
    tiers = serializers.ListField(child=serializers.DictField(), required=False)
    earning_rules = serializers.ListField(child=serializers.DictField(), required=False)


class ProgramApi(ApiView):
    required_scope = {"GET": "read", "PUT": "manage"}

    @api_schema(
        summary="Read a program document",
        responses={200: ProgramDocumentSerializer},
        errors={404: ["program_not_found"]},
        tags=["programs"],
    )
    def get(self, request, code):
        return Response(ProgramDocumentSerializer(program_document(program_or_404(self.tenant, code))).data)

    @api_schema(
        summary="Declare a whole program (create or replace)",
        description="Tiers and earning rules are matched by code: updated, created, or deleted when absent.",
        request=ProgramDocumentSerializer,
        responses={200: ProgramDocumentSerializer},
        errors={400: ["invalid_program"]},
        write=True,
        idempotent=True,
        tags=["programs"],
    )
    def put(self, request, code):
        document = raw_object(ProgramDocumentSerializer, request.data)
        answer = self.answer(lambda p: (status.HTTP_200_OK, ProgramDocumentSerializer(program_document(p)).data))
        return answer.response(program_declare(tenant=self.tenant, code=code, document=document, answer=answer))
