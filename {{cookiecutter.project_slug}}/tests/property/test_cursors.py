"""Cursors round-trip, and every single-character mutation of one is refused."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.pagination import CursorCodec, CursorError, Position

CODEC = CursorCodec("property-test-secret-of-enough-length-0123456789")
ALPHABET = string.ascii_letters + string.digits + "-_."
positions = st.builds(
    Position,
    created_at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
    ),
    id=st.uuids(),
)
listings = st.text(min_size=1, max_size=80)


@given(listing=listings, position=positions)
def test_encode_decode_round_trips(listing: str, position: Position) -> None:
    assert CODEC.decode(CODEC.encode(listing, position), listing) == position


@given(
    listing=listings,
    position=positions,
    index=st.integers(min_value=0),
    replacement=st.sampled_from(ALPHABET),
)
def test_any_mutation_is_refused(
    listing: str, position: Position, index: int, replacement: str
) -> None:
    cursor = CODEC.encode(listing, position)
    i = index % len(cursor)
    if cursor[i] == replacement:
        return
    mutated = cursor[:i] + replacement + cursor[i + 1 :]
    with pytest.raises(CursorError):
        CODEC.decode(mutated, listing)


@given(listing=listings, other=listings, position=positions)
def test_a_cursor_is_bound_to_its_listing(listing: str, other: str, position: Position) -> None:
    if listing == other:
        return
    with pytest.raises(CursorError):
        CODEC.decode(CODEC.encode(listing, position), other)


def test_a_cursor_from_another_secret_is_refused() -> None:
    other = CursorCodec("another-secret-of-enough-length-0123456789abcdef")
    cursor = other.encode("tasks", Position(datetime.now(UTC), uuid.uuid4()))
    with pytest.raises(CursorError):
        CODEC.decode(cursor, "tasks")
