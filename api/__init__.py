"""The touchpoint API (API.md): key authentication, scopes, throttling, idempotency, one error body.

Infrastructure modules (authentication, permissions, throttling, errors, idempotency, pagination,
schema) import no views, so settings can name them without a circular import; the views live in
`api.views.<area>` modules and the routes in `api.urls`. No models: every write calls a service.
"""
