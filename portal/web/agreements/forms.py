"""Forms of the agreements pages. They check the shape of input; the signing rules live in the service."""

from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from portal.domain import terms as T
from portal.services.agreements import Signature
from portal.services.agreements.rendered import SignedBy
from portal.web.forms import PortalForm

# ---------------------------------------------------------------------------------------------------- contact


class ConsentForm(PortalForm):
    disclosure_version_id = HiddenField(validators=[InputRequired(), Regexp(r"^\d{1,9}$")])
    agree = BooleanField("I agree to do business electronically",
                         validators=[DataRequired("Tick the box to agree, or contact us for paper copies.")])


class AcknowledgeForm(PortalForm):
    """One checkbox per high-risk clause (fields ack_<clause key>); every one is required."""

    remote_disable = BooleanField(validators=[DataRequired("Tick this statement to acknowledge it.")])
    equipment_recovery = BooleanField(validators=[DataRequired("Tick this statement to acknowledge it.")])
    autopay = BooleanField(validators=[DataRequired("Tick this statement to acknowledge it.")])
    late_fees = BooleanField(validators=[DataRequired("Tick this statement to acknowledge it.")])

    def clause_fields(self):
        return [(key, getattr(self, key)) for key in T.CLAUSE_KEYS]


class SignForm(PortalForm):
    document_sha256 = HiddenField(validators=[InputRequired(), Regexp(r"^[0-9a-f]{64}$")])
    full_name = StringField("Your full name", validators=[DataRequired("Enter your full name."), Length(2, 200)])
    title = StringField("Your title", description="Your role at the company, e.g. Office Manager or CEO.",
                        validators=[DataRequired("Enter your title."), Length(1, 200)])
    authority = BooleanField(validators=[DataRequired("Confirm that you are authorized to sign for the company.")])
    signature_kind = RadioField("How do you want to sign?", choices=[SelectChoice("drawn", "Draw my signature"),
                                                                       SelectChoice("typed", "Type my name")],
                                default="drawn", validators=[InputRequired("Choose how to sign.")])
    typed_signature = StringField("Type your full name as your signature", validators=[Optional(), Length(max=200)])
    drawn_signature = HiddenField(validators=[Optional(), Length(max=600_000)])


class ConsentSignForm(SignForm):
    """Signing a rendered document (deposit, plan, autopay or charge authorization): the E-SIGN consent is given on
    the same form, not as a step of its own."""

    consent = BooleanField(validators=[DataRequired("Please agree to do business electronically first.")])

    def signed_by(self) -> SignedBy:
        """What the signer gave, as the rendered-document services take it."""
        return SignedBy(full_name=self.full_name.data, title=self.title.data, authority_confirmed=self.authority.data,
                        consent_confirmed=self.consent.data, shown_sha256=self.document_sha256.data,
                        signature=Signature(kind=self.signature_kind.data, typed=self.typed_signature.data or "",
                                            drawn_data_url=self.drawn_signature.data or ""))


class DeclineForm(PortalForm):
    reason = TextAreaField("Why are you declining? (optional)", validators=[Optional(), Length(max=2000)])


# ---------------------------------------------------------------------------------------------------- public


class VerifyReferenceForm(PortalForm):
    reference = StringField("Agreement reference", description="Printed on every page, e.g. AGR-7K3M-Q9TD-2XWB.",
                            validators=[DataRequired("Enter the reference."), Length(max=40)])


class VerifyUploadForm(PortalForm):
    pdf = FileField("Signed PDF", validators=[FileRequired("Choose the signed PDF to check.")])


# ---------------------------------------------------------------------------------------------------- staff


def template_form(kind: str, text: str, parameters: dict[str, str]) -> PortalForm:
    """The template editor: the text plus, for payment terms, one field per version parameter. On a POST the
    submitted values win over ``text``/``parameters`` (Flask-WTF reads the request form)."""

    class TemplateForm(PortalForm):
        body = TextAreaField("Text", validators=[DataRequired("The text cannot be empty."), Length(max=100_000)])

    if kind == T.TERMS:
        for p in T.PARAMETERS:
            validators = [Optional(), Length(max=p.high)] if p.kind == "text" else \
                [InputRequired(f"{p.label}: enter a number."), Length(max=12)]
            setattr(TemplateForm, p.name, StringField(p.label, description=p.help, validators=validators))
    return TemplateForm(data={"body": text, **parameters})


class PublishForm(PortalForm):
    summary = TextAreaField("What changed (shown to clients with the diff)", validators=[Optional(), Length(max=2000)])
    law_checked = BooleanField("I have had these clauses checked against the law where my clients are",
                               validators=[DataRequired("Confirm the clauses were checked against local law.")])


class InviteForm(PortalForm):
    contact_id = SelectField("Send to", coerce=int, validators=[InputRequired("Choose a contact.")])


class ResendForm(PortalForm):
    contact_id = IntegerField(validators=[Optional()])


class VoidForm(PortalForm):
    reason = StringField("Reason", validators=[DataRequired("Say why the invitation is voided."), Length(max=500)])


class ActionForm(PortalForm):
    """A button that only needs the CSRF token."""
