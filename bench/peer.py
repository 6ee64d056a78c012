"""The naive peer of `POST /api/v1/redemptions`, mounted by the bench only (`bench.urls`), never by the product.

A plain DRF view behind the product's API-key authentication (`api.authentication.ApiKeyAuthentication`) and
scope check (`redeem`), doing the minimal redemption with the ORM the way a first version would: find the
member by external id, then in `transaction.atomic()` lock the code row (`select_for_update().get()` by tenant
and code text), `create()` the redemption and its one line, and add to the code's and the campaign's counters
with `F()`. No rules, limits, stacking, idempotency, trace or events: the discount is a flat 10% of `amount`.

    POST /bench/naive-redemption  {"order_id": "...", "member": "<external id>", "code": "...", "amount": "60.00"}
    -> 201 {"redemption": <id>, "code": "...", "discount": "6.00"}
"""

from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import F
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import ApiKeyAuthentication
from api.permissions import HasScope
from campaigns.models import Campaign, Code
from members.models import Member
from rewards.models import Redemption, RedemptionCode

CENT = Decimal("0.01")


class NaiveRedemptionView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes: list = []
    required_scope = "redeem"

    def post(self, request):
        principal = request.user
        tenant = principal.tenant
        data = request.data
        try:
            amount = Decimal(str(data.get("amount", "60.00"))).quantize(CENT)
            order_id, external_id, code_text = str(data["order_id"]), str(data["member"]), str(data["code"])
        except (KeyError, InvalidOperation, TypeError, AttributeError):
            return Response({"error": "order_id, member and code are required"}, status=400)
        discount = (amount * Decimal("0.10")).quantize(CENT)
        member = Member.objects.filter(tenant=tenant, external_id=external_id).only("id").first()
        if member is None:
            return Response({"error": "member_not_found"}, status=404)
        with transaction.atomic():
            try:
                code = Code.objects.select_for_update().get(tenant=tenant, code=code_text)
            except Code.DoesNotExist:
                return Response({"error": "code_not_found"}, status=404)
            redemption = Redemption.objects.create(
                tenant=tenant,
                member=member,
                order_id=order_id,
                order={"amount": str(amount)},
                order_amount=amount,
                discount=discount,
                total=amount - discount,
                channel="api",
                integration_id=principal.integration.pk,
                integration_name=principal.integration.name,
            )
            RedemptionCode.objects.create(
                tenant=tenant,
                redemption=redemption,
                campaign_id=code.campaign_id,
                code=code,
                member=member,
                discount=discount,
                order_amount=amount,
            )
            Code.objects.filter(pk=code.pk).update(redeemed_count=F("redeemed_count") + 1)
            Campaign.objects.filter(pk=code.campaign_id).update(
                redemptions_count=F("redemptions_count") + 1,
                discount_used=F("discount_used") + discount,
                order_value_used=F("order_value_used") + amount,
            )
        return Response({"redemption": redemption.pk, "code": code.code, "discount": str(discount)}, status=201)
