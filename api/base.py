"""The base of every API view: key authentication, scope, throttle, idempotent POSTs, tenant scope."""

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from api import idempotency
from api.authentication import ApiKeyAuthentication
from api.errors import request_too_large
from api.parsers import StrictJSONParser, too_large
from api.permissions import HasScope
from api.schema import ApiAutoSchema
from api.throttling import ApiKeyRateThrottle

BODY_METHODS = {"POST", "PUT", "PATCH"}  # the others' bodies are never read


class ApiView(APIView):
    """Subclasses set `required_scope` (read, redeem, earn, manage) and call one service or selector.

    `self.tenant` is the API key's tenant: every query and service call is confined to it.
    POSTs, PUTs and PATCHes accept an `Idempotency-Key` (set `idempotent = False` on a view to opt out).
    A write view answers through `self.answer(render)` (see `api.idempotency.Answer`): its service stores
    the answer to retries in the transaction of its effects.
    """

    authentication_classes = [ApiKeyAuthentication]
    parser_classes = [StrictJSONParser]
    permission_classes = [HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    schema = ApiAutoSchema()
    required_scope: str | None = None
    idempotent = True
    # The service stores every answer, refusals included, in its own transaction (`idempotency.claim`).
    idempotency_deferred = False
    IDEMPOTENT_METHODS = ("POST", "PUT", "PATCH")

    @property
    def tenant(self):
        return self.request.user.tenant

    @property
    def integration(self):
        return self.request.user.integration

    def perform_authentication(self, request):
        super().perform_authentication(request)
        # The integration is DRF's `request.user`, but not the Django request's: history records and
        # other middleware expect a staff User there (or an anonymous one), never an API principal.
        request._request.user = AnonymousUser()

    def initial(self, request, *args, **kwargs):
        self._idempotency_claim = None
        self._answer = None
        if request.method in BODY_METHODS and too_large(request):  # before the fingerprint or the parser reads it
            raise request_too_large()
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            raise exceptions.NotFound("No such object.")  # a NUL byte can name nothing that is stored
        if (
            self.idempotent
            and request.method in self.IDEMPOTENT_METHODS
            and request.method.lower() in self.http_method_names
        ):
            if getattr(self, request.method.lower(), None) is not None:
                self._idempotency_claim = idempotency.claim(
                    request, integration=self.integration, deferred=self.idempotency_deferred
                )

    def answer(self, render) -> idempotency.Answer:
        """The answer-writer to hand the service as `answer=`; `.response(result)` is the view's Response."""
        self._answer = idempotency.Answer(getattr(self, "_idempotency_claim", None), render)
        return self._answer

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.TwinAnswered):
            # A twin with this key committed first (this request's work rolled back): answer as its retry.
            self._idempotency_claim = None
            try:
                idempotency.claim(self.request, integration=self.integration)
            except idempotency.IdempotentReplay as replay:
                return replay.response()
            except Exception as refused:  # the key reused for another request (409), or still in progress
                return super().handle_exception(refused)
            raise RuntimeError("a twin's idempotency record vanished") from exc  # purged within the request
        if isinstance(exc, idempotency.IdempotentReplay):
            return exc.response()
        answer = getattr(self, "_answer", None)
        if answer is not None:
            answer.settle(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        claim = getattr(self, "_idempotency_claim", None)
        if claim is not None:
            self._idempotency_claim = None
            response = idempotency.complete(claim, response) or response
        return response


class PublicApiView(APIView):
    """No key needed (the schema and docs)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


class ApiNotFoundView(APIView):
    """Catch-all under /api/v1/: an unknown path is a 404 with the error body, whatever the method."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    schema = None

    def initial(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such API path.")
