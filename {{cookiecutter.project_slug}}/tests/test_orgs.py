"""Organizations and memberships; the organization rules of the policy (owner_role,
grantable_by) and the last owner, also under concurrent changes."""

from __future__ import annotations

import asyncio

import httpx

from .api import Api, User


async def test_creator_becomes_owner_and_sees_the_org(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner, "Ünïcorn Labs")
    mine = await client.get("/orgs", headers=owner.headers)
    assert [(o["id"], o["role"], o["name"]) for o in mine.json()] == [
        (org, "owner", "Ünïcorn Labs")
    ]


async def test_members_are_added_by_email_with_a_role(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    viewer = await api.member(org, owner, "viewer")
    listed = await client.get(f"/orgs/{org}/members", headers=viewer.headers)
    assert listed.status_code == 200
    assert {(m["email"], m["role"]) for m in listed.json()} == {
        (owner.email, "owner"),
        (viewer.email, "viewer"),
    }


async def test_adding_an_unregistered_email_or_twice_is_refused(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    ghost = await client.post(
        f"/orgs/{org}/members", json={"email": "ghost@example.com"}, headers=owner.headers
    )
    assert ghost.status_code == 422
    member = await api.member(org, owner, "member")
    again = await client.post(
        f"/orgs/{org}/members", json={"email": member.email.upper()}, headers=owner.headers
    )
    assert again.status_code == 409


async def test_the_last_owner_cannot_leave_or_be_demoted(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    demote = await client.patch(
        f"/orgs/{org}/members/{owner.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert demote.status_code == 409
    leave = await client.delete(f"/orgs/{org}/members/{owner.id}", headers=owner.headers)
    assert leave.status_code == 409


async def test_only_an_owner_grants_owner(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    admin = await api.member(org, owner, "admin")
    member = await api.member(org, owner, "member")
    by_admin = await client.patch(
        f"/orgs/{org}/members/{member.id}", json={"role": "owner"}, headers=admin.headers
    )
    assert by_admin.status_code == 403
    by_owner = await client.patch(
        f"/orgs/{org}/members/{member.id}", json={"role": "owner"}, headers=owner.headers
    )
    assert by_owner.status_code == 200
    assert by_owner.json()["role"] == "owner"
    # Taking owner away is granting too: an admin can neither demote nor remove an owner.
    demote = await client.patch(
        f"/orgs/{org}/members/{member.id}", json={"role": "viewer"}, headers=admin.headers
    )
    remove = await client.delete(f"/orgs/{org}/members/{member.id}", headers=admin.headers)
    assert (demote.status_code, remove.status_code) == (403, 403)


async def _two_owners(api: Api) -> tuple[str, User, User]:
    first = await api.user()
    org = await api.org(first)
    second = await api.member(org, first, "admin")
    promoted = await api.client.patch(
        f"/orgs/{org}/members/{second.id}", json={"role": "owner"}, headers=first.headers
    )
    assert promoted.status_code == 200
    return org, first, second


async def _owners(client: httpx.AsyncClient, org: str, user: User) -> list[str]:
    members = await client.get(f"/orgs/{org}/members", headers=user.headers)
    return [m["user_id"] for m in members.json() if m["role"] == "owner"]


async def test_two_owners_demoting_each_other_at_once_leave_one(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Each request counts two owners; without a lock on the owner rows both would succeed."""
    orgs = [await _two_owners(api) for _ in range(4)]
    results = await asyncio.gather(
        *(
            client.patch(f"/orgs/{org}/members/{b.id}", json={"role": "admin"}, headers=a.headers)
            for org, a, b in orgs
        ),
        *(
            client.patch(f"/orgs/{org}/members/{a.id}", json={"role": "admin"}, headers=b.headers)
            for org, a, b in orgs
        ),
    )
    for i, (org, a, _b) in enumerate(orgs):
        pair = sorted((results[i].status_code, results[i + len(orgs)].status_code))
        assert pair == [200, 409], [r.text for r in (results[i], results[i + len(orgs)])]
        assert len(await _owners(client, org, a)) == 1


async def test_two_owners_removing_each_other_at_once_leave_one(
    api: Api, client: httpx.AsyncClient
) -> None:
    orgs = [await _two_owners(api) for _ in range(4)]
    results = await asyncio.gather(
        *(client.delete(f"/orgs/{org}/members/{b.id}", headers=a.headers) for org, a, b in orgs),
        *(client.delete(f"/orgs/{org}/members/{a.id}", headers=b.headers) for org, a, b in orgs),
    )
    for i, (org, a, b) in enumerate(orgs):
        first, second = results[i], results[i + len(orgs)]
        assert sorted((first.status_code, second.status_code)) == [204, 409]
        survivor = a if first.status_code == 204 else b
        assert await _owners(client, org, survivor) == [survivor.id]


async def test_non_members_get_404_members_without_the_right_get_403(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    viewer = await api.member(org, owner, "viewer")
    outsider = await api.user()
    assert (
        await client.patch(f"/orgs/{org}", json={"name": "x"}, headers=viewer.headers)
    ).status_code == 403
    assert (await client.get(f"/orgs/{org}", headers=outsider.headers)).status_code == 404


async def test_deleting_an_org_deletes_its_data(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    assert (await client.delete(f"/orgs/{org}", headers=owner.headers)).status_code == 204
    gone = await client.get(f"/orgs/{org}/projects/{project['id']}", headers=owner.headers)
    assert gone.status_code == 404
