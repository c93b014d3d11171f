"""Registration, login and tokens."""

from __future__ import annotations

import httpx
import jwt
import pytest

from .api import PASSWORD, Api
from .conftest import TEST_SECRET


async def test_register_login_and_me(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("Ana.Lopez@Example.COM")
    assert user.email == "Ana.Lopez@example.com"  # domain lower-cased, local part kept
    me = await client.get("/users/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["id"] == user.id
    assert "password" not in me.text


async def test_unicode_email_is_valid_and_normalised(api: Api) -> None:
    user = await api.user("Zoë@ÉXAMPLE.com")
    assert user.email == "Zoë@éxample.com"


async def test_email_is_unique_case_insensitively(api: Api, client: httpx.AsyncClient) -> None:
    await api.user("Maria@example.com")
    again = await client.post(
        "/auth/register", json={"email": "MARIA@EXAMPLE.COM", "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "body.email"),
        ({"email": "a@example.com", "password": "short"}, "at least"),
        ({"email": "a@example.com"}, "body.password"),
        ({"email": "a@example.com", "password": PASSWORD, "is_admin": True}, "body.is_admin"),
    ],
)
async def test_bad_registration_is_a_clear_422(
    client: httpx.AsyncClient, body: dict[str, object], fragment: str
) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


async def test_wrong_password_and_unknown_email_look_the_same(
    api: Api, client: httpx.AsyncClient
) -> None:
    user = await api.user()
    wrong = await client.post("/auth/token", data={"username": user.email, "password": "nope"})
    unknown = await client.post(
        "/auth/token", data={"username": "ghost@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_login_accepts_any_case_of_the_email(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("Case.Test@Example.com")
    login = await client.post(
        "/auth/token", data={"username": user.email.upper(), "password": PASSWORD}
    )
    assert login.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not-a-jwt",
        "Bearer "
        + jwt.encode(
            {"sub": "x"}, "another-secret-of-a-decent-length-0123456789", algorithm="HS256"
        ),
        "Bearer "
        + jwt.encode(
            {
                "sub": "7d3f1b8e-0000-4000-8000-000000000000",
                "exp": 1,
                "iat": 0,
                "iss": "{{ cookiecutter.project_slug }}",
                "aud": "{{ cookiecutter.project_slug }}-api",
            },
            TEST_SECRET,
            algorithm="HS256",
        ),
    ],
    ids=["missing", "garbage", "foreign-signature", "expired"],
)
async def test_protected_routes_need_a_valid_token(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401
