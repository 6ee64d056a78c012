"""The OpenAPI schema is generated cleanly and documents auth and errors; the docs need no CDN."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_generation_is_valid_and_warning_free(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.")


def test_schema_is_served_without_a_key_with_the_api_key_scheme_and_the_error_body(anon):
    response = anon.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"error"}
    assert schema["paths"], "no API operation documented"
    for path, operations in schema["paths"].items():
        assert path.startswith("/api/v1/")
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation["security"] == [{"ApiKeyAuth": []}], (path, method)
            for status in ("401", "403", "429", "500"):
                ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/Error"), (path, method, status)
            if method == "post" and path != "/api/v1/validations/":  # validation changes nothing
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
                assert "Idempotency-Key" in names, path


def test_the_docs_page_loads_only_local_assets(anon):
    response = anon.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html[:500]
    for asset in assets:
        if asset == "/api/v1/docs/?script=":  # Swagger UI's start-up script, served by the page's own view
            continue
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a local static file"
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"https?://(?!testserver)", html)


def test_the_webhook_envelope_is_documented_with_every_event_type(anon):
    from common.events import EVENT_TYPES

    envelope = anon.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]["WebhookEventEnvelope"]
    assert envelope["required"] == ["id", "type", "created_at", "tenant", "data"]
    assert envelope["properties"]["type"]["enum"] == list(EVENT_TYPES)
    assert "Loyalty-Signature" in envelope["description"]
