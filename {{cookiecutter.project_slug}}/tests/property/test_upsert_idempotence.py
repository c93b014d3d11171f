"""An upsert applied N times leaves the same state as applied once."""

from __future__ import annotations

from datetime import date

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..api import Api

payloads = st.fixed_dictionaries(
    {
        "title": st.text(
            st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=500
        ).filter(lambda t: t.strip()),
        "status": st.sampled_from(["todo", "in_progress", "done"]),
        "due_date": st.none()
        | st.dates(min_value=date(1900, 1, 1), max_value=date(2400, 12, 31)).map(str),
    }
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=payloads,
    times=st.integers(1, 4),
    key=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,30}", fullmatch=True),
)
async def test_upsert_n_times_equals_once(
    client: httpx.AsyncClient, payload: dict[str, str | None], times: int, key: str
) -> None:
    api = Api(client)
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    body = {**payload, "project_id": project["id"]}
    url = f"/orgs/{org}/tasks/by-key/{key}"
    responses = [await client.put(url, json=body, headers=owner.headers) for _ in range(times)]
    assert [r.status_code for r in responses] == [201] + [200] * (times - 1)
    first, last = responses[0].json(), responses[-1].json()
    assert last == first  # same id, same values, same updated_at: nothing was rewritten
    listed = await client.get(f"/orgs/{org}/tasks", headers=owner.headers)
    assert [t["id"] for t in listed.json()["items"]] == [first["id"]]
