"""Month names as people write them, and their numbers.

Shared by the two places that read dates out of text without a model: the policy's
provenance check (a date an argument holds may be the request's, in another form) and
the guided layer's value forms (a request's date put in the form a parameter states).
"""

from __future__ import annotations

MONTH_NUMBERS: dict[str, int] = {
    name: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        )
    )
    for name in names
}
