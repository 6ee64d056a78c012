"""The cockpit's formatting filters (`{% load cockpit_format %}`): see rewards.cockpit.formats."""

from django import template

from rewards.cockpit import formats

register = template.Library()

register.filter("points", formats.points)
register.filter("money", formats.money)
register.filter("incentive", formats.incentive)
register.filter("ledger_kind", formats.ledger_kind)
