"""Cursor pagination with the contract's shape: {"results": [...], "next": "<url or null>"}.

`ApiCursorPagination` pages one queryset (DRF's cursor: position of the first ordering field plus an offset).
`SectionedCursorPagination` pages a list made of several querysets answered one after the other (a member's
rewards: codes, promotions, catalog rewards, redemptions), with a keyset cursor naming the section and the
last row answered. Both answer a cursor they cannot read with 404 `not_found` ("Invalid cursor"), never a 500.
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection
from django.db.models import Field, Model, Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

CURSOR_PARAMETERS = [
    OpenApiParameter("cursor", str, description="From `next`; an unreadable cursor is 404 `not_found`."),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1},
        description="Page size from 1, at most 200 (default 50; above 200, 200); otherwise 400.",
    ),
]


# What a tampered cursor can raise while its values are read as the fields they are compared with.
BAD_VALUE = (ValueError, TypeError, OverflowError, ValidationError, FieldDoesNotExist)


def _field(model: type[Model], name: str) -> Field:
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


def _cursor_value(field: Field, raw: Any) -> Any:
    """`raw` as a value of `field`, adapted for the database as the query will be: one of BAD_VALUE if not."""
    value = field.to_python(raw)
    if value is None or (isinstance(value, datetime) and timezone.is_naive(value)):
        raise ValueError(raw)
    field.get_db_prep_value(value, connection, prepared=False)
    return value


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-pk")

    def __init__(self, ordering=None):
        if ordering is not None:
            self.ordering = ordering
        self._position_field: Field | None = None

    def paginate_queryset(self, queryset, request, view=None):
        ordering = (self.ordering,) if isinstance(self.ordering, str) else self.ordering
        try:
            self._position_field = _field(queryset.model, ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            self._position_field = None
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        """`limit`: a whole number from 1 (above the maximum, the maximum); anything else is a 400, where
        DRF would quietly answer the default size."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise serializers.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return min(size, self.max_page_size)

    def decode_cursor(self, request):
        # DRF checks the cursor's framing but not its position: a tampered one ("p=abc" on a date) would
        # fail in the query's filter, a 500. Check it against the field it is compared with.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and self._position_field is not None:
            try:
                _cursor_value(self._position_field, cursor.position)
            except BAD_VALUE:
                raise NotFound(self.invalid_cursor_message) from None
        return cursor

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "format": "uri", "nullable": True}},
        }


class ListSection(Protocol):
    """One source of a sectioned list (see `rewards.selectors.ListSection`)."""

    name: str
    queryset: Callable[[], QuerySet]
    ordering: Sequence[str]
    render: Callable[[Any], dict[str, Any]]

    def rows(self, queryset: QuerySet, limit: int | None = None) -> list: ...


def _key_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _after(model: type[Model], ordering: Sequence[str], key: list) -> Q:
    """Rows strictly after `key` in `ordering`: (a > x) or (a = x and b > y) or ..., `<` for descending."""
    after = Q()
    equal: dict[str, Any] = {}
    for name, raw in zip(ordering, key, strict=True):
        field_name = name.lstrip("-")
        value = _cursor_value(_field(model, field_name), raw)
        step = Q(**equal, **{f"{field_name}__{'lt' if name.startswith('-') else 'gt'}": value})
        after = step if not after else after | step
        equal[field_name] = value
    return after


class SectionedCursorPagination(ApiCursorPagination):
    """Pages over sections answered in a fixed order, each a queryset with a unique ordering.

    Why not one queryset: the sections are different models, each with its own natural order (newest code
    first, cheapest reward first, newest redemption first); a UNION would need a common sort key and
    rendering rows of four models from one row shape. Instead the cursor is a keyset: the section's name and
    the ordering values of the last row answered. A page reads at most one query per section (`limit + 1`
    rows, the extra one only to know there is more), so walking all pages answers every row once, in order,
    whatever rows were added or removed meanwhile elsewhere in the list. A section's `ordering` must end
    with a unique, non-null field (the primary key) and name only the model's own fields.
    """

    def paginate_sections(self, sections: Sequence[ListSection], request) -> list[dict[str, Any]]:
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self._next: str | None = None
        start, key = self._decode_sections(request, [s.name for s in sections])
        items: list[dict[str, Any]] = []
        last: tuple[ListSection, Model] | None = None
        for section in sections[start:]:
            rows = section.queryset().order_by(*section.ordering)
            if key is not None:
                try:
                    rows = rows.filter(_after(rows.model, section.ordering, key))
                except BAD_VALUE:
                    raise NotFound(self.invalid_cursor_message) from None
                key = None
            room = self.page_size - len(items)
            fetched = section.rows(rows, room + 1)
            taken = fetched[:room]
            items += [section.render(row) for row in taken]
            if taken:
                last = (section, taken[-1])
            if len(fetched) > room:
                assert last is not None  # room == 0 only once the page holds rows
                self._next = self._encode_sections(*last)
                break
        return items

    def get_next_link(self):
        return self._next

    def _encode_sections(self, section: ListSection, row: Model) -> str:
        key = [_key_value(getattr(row, name.lstrip("-"))) for name in section.ordering]
        token = base64.urlsafe_b64encode(json.dumps({"s": section.name, "k": key}).encode()).decode()
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _decode_sections(self, request, names: list[str]) -> tuple[int, list | None]:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return 0, None
        try:
            cursor = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
            name, key = cursor["s"], cursor["k"]
            if name not in names or not isinstance(key, list):
                raise ValueError(name)
        except (ValueError, TypeError, KeyError, binascii.Error):
            # A cursor of another filter (`?status=`) names a section this list does not have: refused too.
            raise NotFound(self.invalid_cursor_message) from None
        return names.index(name), key


_paginated: dict[type, type] = {}


def paginated(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """A `Paginated<Name>` serializer for the schema of a list answered by `ApiCursorPagination`."""
    if serializer_class not in _paginated:
        name = serializer_class.__name__.removesuffix("Serializer")
        _paginated[serializer_class] = type(
            f"Paginated{name}Serializer",
            (serializers.Serializer,),
            {
                "results": serializer_class(many=True),
                "next": serializers.URLField(allow_null=True),
                "__module__": serializer_class.__module__,
            },
        )
    return _paginated[serializer_class]
