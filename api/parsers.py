"""JSON in, with the rules that keep hostile bodies from reaching the views (each a 400 `malformed_request`):

- at most `MAX_JSON_DEPTH` (32) nested arrays/objects: checked on the raw text before `json.loads`, so
  nothing recurses on a deep body (the decoder, the checks below, the idempotency fingerprint, the
  serializers, the renderer);
- no NUL character in any key or string (PostgreSQL text and jsonb cannot store it);
- no lone UTF-16 surrogate (`"\\ud800"`) in any key or string: it cannot be encoded as UTF-8, so the
  database could not store it and the renderer could not echo it in an error message.

A body above `DATA_UPLOAD_MAX_MEMORY_SIZE` is refused before it is read (413 `request_too_large`).
"""

import re
from io import BytesIO
from itertools import accumulate

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from api.errors import request_too_large

MAX_JSON_DEPTH = 32

# A JSON string: quote, then runs of plain characters and escapes (linear, no nested quantifier).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `raw` nests arrays/objects deeper than `limit`, found without recursion.

    Brackets inside strings do not count. On malformed text the answer may be wrong, but the decoder
    refuses such text anyway.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    return max(accumulate(1 if b in b"[{" else -1 for b in brackets), default=0) > limit


def _bad_string(value) -> str | None:
    """Why the parsed JSON `value` cannot be accepted (None when it can). Iterative: depth is bounded already,
    but no recursion is needed."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "JSON strings must not contain NUL characters."
            if not item.isascii() and _SURROGATE.search(item):
                return "JSON strings must not contain lone UTF-16 surrogates (such as \\ud800)."
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def too_large(request) -> bool:
    """Whether the request's declared body is above Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return limit is not None and length > limit


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        if request is not None and too_large(request):
            raise request_too_large()
        raw = stream.read() if stream is not None else b""
        if json_depth_exceeds(raw):
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        data = super().parse(BytesIO(raw), media_type, parser_context)
        problem = _bad_string(data)
        if problem:
            raise ParseError(problem)
        return data
