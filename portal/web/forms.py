"""The base of every form in the portal: what it accepts from the request, whatever the form's own fields say.

- A file posted under a text field's name never reaches that field (a strip filter would call ``.strip()`` on the
  upload); the field is refused with an error instead. Only file fields see uploads.
- An integer (an id, a count) must fit the 32-bit columns, so a huge id is a form error, not a database error.
- A date must lie in the supported calendar (portal.domain.dates), so date arithmetic cannot overflow.
Text the database cannot store (NUL, lone surrogates) never gets this far: portal.web.params refuses the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import Field, FieldList, FormField
from wtforms.validators import ValidationError

from portal.domain.dates import check_supported
from portal.domain.errors import DomainError

from .params import MAX_ID, MIN_INT

FILE_WHERE_TEXT_EXPECTED = "This field takes text, not a file."


def all_fields(form) -> Iterator[Field]:
    """Every field of a form, including those inside FieldList and FormField."""
    for field in form:
        if isinstance(field, FieldList):
            for entry in getattr(field, "entries", ()):  # no entries before the form has processed its data
                yield from all_fields([entry])
        elif isinstance(field, FormField):
            yield from all_fields(field.form)
        else:
            yield field


def _within_columns(_form, field: Field) -> None:
    values = field.data if isinstance(field.data, list | tuple) else [field.data]
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_ID:
            raise ValidationError("That number is too large.")
        if isinstance(value, date):
            try:
                check_supported(value)
            except DomainError as e:
                raise ValidationError(str(e)) from None


class PortalForm(FlaskForm):
    class Meta:
        def wrap_formdata(self, form, formdata):
            formdata = super().wrap_formdata(form, formdata)
            if not isinstance(formdata, CombinedMultiDict):  # Flask-WTF combines only when files were posted
                return formdata
            file_names = {f.name for f in all_fields(form) if isinstance(f, FileField)}
            uploads = MultiDict((k, v) for k, v in request.files.items(multi=True) if k in file_names)
            form._files_where_text_expected = set(request.files) - file_names
            return CombinedMultiDict((uploads, request.form))

    def validate(self, extra_validators=None) -> bool:
        extra = {name: [*(extra_validators or {}).get(name, ()), _within_columns] for name in self._fields}
        valid = super().validate(extra)
        # added after the field's own validators, which may clear earlier errors (DataRequired does)
        stray = getattr(self, "_files_where_text_expected", set())
        for field in all_fields(self):
            if field.name in stray:
                field.errors = [FILE_WHERE_TEXT_EXPECTED, *field.errors]
                valid = False
        return valid
