"""``badge`` (portal.web.template_helpers): the staff pages' status badge, a filter instead of a macro, renders
exactly what the macro did, and escapes what it prints like any template text."""

from __future__ import annotations

import pytest
from flask import render_template_string

MACRO = """{% macro old_badge(status) -%}
<span class="badge badge-{{ status|replace(' ', '-') }}">{{ status|replace('_', ' ')|capitalize }}</span>
{%- endmacro %}{{ old_badge(status) }}"""


@pytest.mark.parametrize("status", ["open", "partially_paid", "on hold", "VOID", "", "x_y z"])
def test_the_badge_is_what_the_macro_rendered(app, status):
    with app.test_request_context("/"):
        assert render_template_string("{{ status|badge }}", status=status) == render_template_string(
            MACRO, status=status)


def test_a_status_cannot_write_markup(app):
    with app.test_request_context("/"):
        html = render_template_string("{{ status|badge }}", status='"><script>x</script>')
    assert html == ('<span class="badge badge-&#34;&gt;&lt;script&gt;x&lt;/script&gt;">'
                    '&#34;&gt;&lt;script&gt;x&lt;/script&gt;</span>')
