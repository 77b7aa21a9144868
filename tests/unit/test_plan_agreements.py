"""The plan agreement and promissory note texts: every placeholder is a known variable, the sample data merges into
both, and the wording follows the document (a note names a Borrower and a Holder)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.domain import evidence
from portal.domain import plan_agreements as P
from portal.domain import terms as T


def sample(as_note: bool) -> str:
    variables = P.sample_variables(msp_legal_name="Acme IT LLC", msp_email="billing@acme.test",
                                   portal_url="https://portal.acme.test/", effective_date=date(2026, 3, 16),
                                   as_note=as_note)
    return evidence.merge(P.DEFAULT_TEXTS[P.kind_for(as_note)], variables)


def test_the_default_texts_use_only_known_variables_and_are_registered_templates():
    for kind in P.KINDS:
        evidence.check_placeholders(P.DEFAULT_TEXTS[kind], P.VARIABLES)
        assert kind in T.TEMPLATE_KINDS and T.variables_for(kind) == P.VARIABLES
        assert T.DEFAULT_TEXTS[kind] == P.DEFAULT_TEXTS[kind]


def test_the_plan_agreement_states_schedule_default_and_authorization():
    text = sample(as_note=False)
    assert "# Installment plan agreement" in text and "**Example Client LLC**" in text
    assert "- Invoice INV-001041, due January 30, 2026: $1,200.00" in text
    assert "The remaining **$1,400.00** is paid in 3 installments, monthly." in text
    assert "- Payment 1, due April 15, 2026: **$466.66**" in text and "(interest" not in text  # no APR: no split
    assert "within 5 days after its due date, the plan is in default" in text
    assert "The Client authorizes the Provider to charge each installment" in text and "Visa ending 4242" in text


def test_the_note_has_principal_apr_and_the_amortization_table_in_its_own_words():
    text = sample(as_note=True)
    assert "principal sum of **$1,400.00**" in text and "rate of **12%**" in text
    assert "(interest $14.00, principal $462.03, principal owed after it $937.97)" in text
    assert "The Borrower authorizes the Holder" in text and "when this note is signed" in text
    assert "Client" not in text.replace("Example Client LLC", "")


def test_without_a_saved_method_the_client_pays_in_the_portal():
    wording = P.payment_wording(None, "https://portal.acme.test/")
    assert "pays each installment by its due date in the client portal" in wording


def test_percent_wording_has_one_spelling():
    assert [P.percent_wording(Decimal(v)) for v in ("12.50", "0", "18.000")] == ["12.5%", "0%", "18%"]
