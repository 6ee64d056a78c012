"""Cursor pagination with the contract's shape: {"results": [...], "next": "<url or null>"}."""

from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-pk")

    def __init__(self, ordering=None):
        if ordering is not None:
            self.ordering = ordering

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "format": "uri", "nullable": True}},
        }


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
