"""The tenant endpoints (api/views/tenant.py): the key's tenant and its kill switch."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_kill_switch_freezes_and_unfreezes_the_keys_tenant_only(api, tenant, other_tenant):
    response = api.post("/api/v1/tenant/freeze", {"reason": "fraud wave"}, format="json")
    assert response.status_code == 200
    assert response.json()["frozen"] is True and response.json()["frozen_reason"] == "fraud wave"
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.frozen and not other_tenant.frozen
    response = api.post("/api/v1/tenant/unfreeze/")
    assert response.status_code == 200 and response.json()["frozen"] is False
    tenant.refresh_from_db()
    assert not tenant.frozen and tenant.frozen_reason == ""
