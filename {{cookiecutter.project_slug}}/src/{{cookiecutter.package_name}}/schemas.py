"""Field types shared by every resource's schemas."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, ConfigDict, StringConstraints
from pydantic import BaseModel as _BaseModel

# RFC 5321's limit, and the width of the users.email and users.email_key columns.
EMAIL_MAX_LENGTH = 320


def normalise_email(value: str) -> str:
    """The normalised form of an email address; ValueError with the reason if invalid."""
    try:
        # No DNS lookup: validation must not depend on the network.
        normalised = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    # Normalising and case-folding can lengthen an address ("ß" folds to "ss", "ΐ" to three
    # characters): both stored forms must still fit their columns.
    if max(len(normalised), len(email_key(normalised))) > EMAIL_MAX_LENGTH:
        raise ValueError(f"the address is too long (at most {EMAIL_MAX_LENGTH} characters)")
    return normalised


def storable_text(value: str) -> str:
    """Refuse what no database column can hold: NUL characters and unpaired surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must be valid Unicode (unpaired surrogate found)")
    return value


# Every free-text field is at least this: any Unicode a database can store.
Text = Annotated[str, AfterValidator(storable_text)]

# Unicode local parts and IDN domains are valid; the stored form is NFC with a lower-cased domain.
Email = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(storable_text),
    AfterValidator(normalise_email),
]
# Constraints first, then the storability check: strip before counting the length.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(storable_text),
]


def email_key(email: str) -> str:
    """The case-insensitive identity of an email address (the unique column)."""
    return email.casefold()


class Schema(_BaseModel):
    """Base of request/response bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
