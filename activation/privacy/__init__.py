"""GDPR requests: a person's data export (right of access) and erasure (right to be forgotten).

    person = find_person(con, customer_id="c042")       # or email="Ada@Example.com"
    document = export_document(con, person)              # everything held about them, by section
    report = record_erasure(con, person, by="dpo@shop", reason="ticket 123")

One module per concern:

    identity.py   who the request is about: the resolved customer, every source id and anonymous
                  id merged into them, their normalised emails and phones (never stored by erasure:
                  only their sha256)
    export.py     the access request: one JSON document, section by section, with the tables
                  that do not exist yet listed as absent
    erasure.py    the erasure request: tideline_sync.erasure_requests and erased_identities,
                  the 'all'-channel suppression, derived scores deleted, the landing files that
                  still hold the person listed (file and row count, never content)

What an erasure sets in motion elsewhere: the sync planner leaves erased customers out of every
segment and deletes them from upsert and mirror destinations on their next sync
(activation.planner); the next dbt build filters their identities out in staging
(dbt_project/macros/erasure.sql), so no mart holds them. docs/privacy.md describes it all.
"""

from activation.privacy.erasure import ErasureReport, erased_customers_sql, record_erasure
from activation.privacy.export import export_document, write_export
from activation.privacy.identity import Person, PrivacyRequestError, find_person

__all__ = [
    "ErasureReport",
    "Person",
    "PrivacyRequestError",
    "erased_customers_sql",
    "export_document",
    "find_person",
    "record_erasure",
    "write_export",
]
