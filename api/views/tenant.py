"""The tenant kill switch over the API: freeze (refuse every redemption and earning) and unfreeze."""

from rest_framework import serializers, status
from rest_framework.response import Response

from api.base import ApiView
from api.schema import api_schema
from api.serializers import InputSerializer
from members.services import tenant_set_frozen


class TenantOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    time_zone = serializers.CharField()
    frozen = serializers.BooleanField()
    frozen_reason = serializers.CharField()


class TenantFreezeInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _tenant_answer(tenant):
    return status.HTTP_200_OK, TenantOutputSerializer(tenant).data


class TenantDetailApi(ApiView):
    required_scope = "read"

    @api_schema(summary="The API key's tenant", responses={200: TenantOutputSerializer}, tags=["tenant"])
    def get(self, request):
        return Response(TenantOutputSerializer(self.tenant).data)


class TenantFreezeApi(ApiView):
    required_scope = "manage"

    @api_schema(
        summary="Freeze the tenant (kill switch)",
        description="Refuses every redemption and earning of the tenant at once, until unfrozen.",
        request=TenantFreezeInputSerializer,
        responses={200: TenantOutputSerializer},
        write=True,
        idempotent=True,
        tags=["tenant"],
    )
    def post(self, request):
        data = TenantFreezeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = self.answer(_tenant_answer)
        return answer.response(
            tenant_set_frozen(tenant=self.tenant, frozen=True, reason=data.validated_data["reason"], answer=answer)
        )


class TenantUnfreezeApi(ApiView):
    required_scope = "manage"

    @api_schema(
        summary="Unfreeze the tenant",
        request=None,
        responses={200: TenantOutputSerializer},
        idempotent=True,
        tags=["tenant"],
    )
    def post(self, request):
        answer = self.answer(_tenant_answer)
        return answer.response(tenant_set_frozen(tenant=self.tenant, frozen=False, answer=answer))
