"""Reads trust a cached role only briefly; a change made here takes effect at once."""

from __future__ import annotations

import uuid

import httpx

from {{ cookiecutter.package_name }}.security.membership_cache import MembershipCache

from ..api import Api
from ..cache_helpers import ManualClock
from ..test_queries import count_statements


async def test_a_warm_read_costs_no_membership_query(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    await client.get(f"/orgs/{org}/projects", headers=owner.headers)
    with count_statements() as statements:
        await client.get(f"/orgs/{org}/projects", headers=owner.headers)
    assert not [s for s in statements if "memberships" in s]


async def test_a_removed_member_loses_read_access_immediately(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    member = await api.member(org, owner, "member")
    assert (await client.get(f"/orgs/{org}/projects", headers=member.headers)).status_code == 200
    removed = await client.delete(f"/orgs/{org}/members/{member.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert (await client.get(f"/orgs/{org}/projects", headers=member.headers)).status_code == 404


async def test_a_demotion_applies_to_the_next_request(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    admin = await api.member(org, owner, "admin")
    assert (await client.get(f"/orgs/{org}/members", headers=admin.headers)).status_code == 200
    await client.patch(
        f"/orgs/{org}/members/{admin.id}", json={"role": "viewer"}, headers=owner.headers
    )
    me = await client.get(f"/orgs/{org}", headers=admin.headers)
    assert me.json()["role"] == "viewer"


async def test_writes_never_trust_the_cache(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    await client.get(f"/orgs/{org}/projects", headers=owner.headers)  # cached
    with count_statements() as statements:
        await client.post(f"/orgs/{org}/projects", json={"name": "x"}, headers=owner.headers)
    assert [s for s in statements if "FROM memberships" in s]


def test_a_cached_role_is_trusted_for_the_configured_bound_only() -> None:
    clock = ManualClock()
    cache = MembershipCache(5.0, timer=clock)
    org, user = uuid.uuid4(), uuid.uuid4()
    cache.put(org, user, "admin")
    clock.now += 4.9
    assert cache.get(org, user) == "admin"
    clock.now += 0.1  # MEMBERSHIP_CACHE_SECONDS after it was read: ask the database again
    assert cache.get(org, user) is None
    assert MembershipCache(0, timer=clock).get(org, user) is None  # 0 disables it
