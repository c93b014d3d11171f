"""Cursors round-trip, and every one-character edit of one (a character replaced, inserted or
deleted) is refused, as is a cursor of another listing or another secret."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
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


def _edit(cursor: str, kind: str, index: int, char: str) -> str:
    i = index % (len(cursor) + (kind == "insert"))
    if kind == "replace":
        return cursor[:i] + char + cursor[i + 1 :]
    if kind == "insert":
        return cursor[:i] + char + cursor[i:]
    return cursor[:i] + cursor[i + 1 :]


@settings(max_examples=300)
@given(
    listing=listings,
    position=positions,
    kind=st.sampled_from(["replace", "insert", "delete"]),
    index=st.integers(min_value=0),
    char=st.sampled_from(ALPHABET),
)
def test_any_one_character_edit_is_refused(
    listing: str, position: Position, kind: str, index: int, char: str
) -> None:
    cursor = CODEC.encode(listing, position)
    mutated = _edit(cursor, kind, index, char)
    assume(mutated != cursor)
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
