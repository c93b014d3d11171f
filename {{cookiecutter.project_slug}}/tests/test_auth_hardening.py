"""JWT variants (RS256 by key and by JWKS), identity-provider users, login throttling, passwords."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.security import tokens as tokens_module
from {{ cookiecutter.package_name }}.security.tokens import InvalidTokenError, Tokens

from .api import PASSWORD, Api
from .conftest import REDIS_URL, make_settings, running
from .local_http import serving

ISSUER, AUDIENCE = "https://idp.example.test/", "acme-api"


def _rsa() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = _rsa()


def _idp_token(private: str = PRIVATE, **claims: Any) -> str:
    now = datetime.now(UTC)
    body = {
        "sub": str(uuid.uuid4()),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    return jwt.encode(body, private, algorithm="RS256", headers={"kid": "k1"})


def _rs256_settings(**overrides: Any) -> Any:
    return make_settings(
        "sqlite+aiosqlite://",
        jwt_algorithm="RS256",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        **overrides,
    )


def test_rs256_tokens_of_the_identity_provider_are_accepted_by_public_key() -> None:
    tokens = Tokens(_rs256_settings(jwt_public_key=PUBLIC))
    principal = tokens.verify(_idp_token(sub="auth0|12345", email="ida@example.com"))
    assert not tokens.can_mint
    assert principal.identity is not None
    assert principal.identity.subject == "auth0|12345"
    assert principal.identity.email == "ida@example.com"
    assert not principal.identity.email_verified
    # The same subject always gives the same local id; another subject, another one.
    assert tokens.verify(_idp_token(sub="auth0|12345")).user_id == principal.user_id
    assert tokens.verify(_idp_token(sub="auth0|67890")).user_id != principal.user_id


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: _idp_token(private=_rsa()[0]), id="other-key"),
        pytest.param(lambda: _idp_token(iss="https://evil.test/"), id="wrong-issuer"),
        pytest.param(lambda: _idp_token(aud="other-api"), id="wrong-audience"),
        pytest.param(
            lambda: _idp_token(exp=datetime.now(UTC) - timedelta(minutes=2)), id="expired"
        ),
        # Algorithm confusion: HS256 "signed" with the public key text must not pass.
        pytest.param(
            lambda: jwt.encode(
                {
                    "sub": str(uuid.uuid4()),
                    "iss": ISSUER,
                    "aud": AUDIENCE,
                    "iat": datetime.now(UTC),
                    "exp": datetime.now(UTC) + timedelta(minutes=5),
                },
                "x" * 64,
                algorithm="HS256",
            ),
            id="hs256-when-rs256",
        ),
    ],
)
def test_rs256_rejections(token: Any) -> None:
    tokens = Tokens(_rs256_settings(jwt_public_key=PUBLIC))
    with pytest.raises(InvalidTokenError):
        tokens.verify(token())


def test_clock_skew_leeway_is_a_setting() -> None:
    slightly_expired = _idp_token(exp=datetime.now(UTC) - timedelta(seconds=20))
    assert Tokens(_rs256_settings(jwt_public_key=PUBLIC, jwt_leeway_seconds=30)).verify(
        slightly_expired
    )
    with pytest.raises(InvalidTokenError):
        Tokens(_rs256_settings(jwt_public_key=PUBLIC, jwt_leeway_seconds=0)).verify(
            slightly_expired
        )


def test_a_verified_token_is_remembered_but_never_past_its_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = Tokens(_rs256_settings(jwt_public_key=PUBLIC, jwt_leeway_seconds=0))
    expires = int(time.time()) + 2
    token = _idp_token(exp=expires)
    principal = tokens.verify(token)

    def no_decode(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a remembered token is not verified again")

    with monkeypatch.context() as patched:
        patched.setattr(tokens_module.jwt, "decode", no_decode)
        assert tokens.verify(token) == principal
    time.sleep(max(0.0, expires - time.time()) + 0.1)  # let the token expire
    with pytest.raises(InvalidTokenError):
        tokens.verify(token)


@pytest.fixture
def jwks_url() -> Iterator[str]:
    """A local JWKS endpoint, as an identity provider would serve it."""
    public_key = serialization.load_pem_public_key(PUBLIC.encode())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))  # type: ignore[arg-type]
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        yield f"{base}/.well-known/jwks.json"


async def test_rs256_by_jwks_url(jwks_url: str) -> None:
    tokens = Tokens(_rs256_settings(jwt_jwks_url=jwks_url))
    token = _idp_token()
    assert (await tokens.verify_async(token)).user_id
    with pytest.raises(InvalidTokenError):
        await tokens.verify_async(_idp_token(private=_rsa()[0]))


def _idp_app(database_url: str) -> Any:
    return create_app(
        make_settings(
            database_url,
            jwt_algorithm="RS256",
            jwt_public_key=PUBLIC,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
        )
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_and_login_are_closed_when_the_idp_issues_tokens(
    database_url: str,
) -> None:
    async with running(_idp_app(database_url)) as client:
        login = await client.post("/auth/token", data={"username": "a@b.co", "password": "x"})
        register = await client.post(
            "/auth/register", json={"email": "new@example.com", "password": PASSWORD}
        )
    for response in (login, register):
        assert response.status_code == 403
        assert response.json()["type"].endswith("/identity-provider-only")
    assert "identity provider" in register.json()["detail"]


async def test_an_idp_user_is_created_on_first_use_and_works_through_org_routes(
    database_url: str,
) -> None:
    subject = f"auth0|{uuid.uuid4().hex}"
    token = _idp_token(sub=subject, email="Ida.Provider@Example.COM", name="Ida Provider")
    async with running(_idp_app(database_url)) as client:
        # Concurrent first requests of one new person make one user, not a conflict.
        firsts = await asyncio.gather(
            *(client.get("/users/me", headers=_bearer(token)) for _ in range(5))
        )
        assert [r.status_code for r in firsts] == [200] * 5, [r.text for r in firsts]
        assert len({r.json()["id"] for r in firsts}) == 1
        me = firsts[0].json()
        assert me["email"] == "Ida.Provider@example.com"
        assert me["full_name"] == "Ida Provider"

        created = await client.post("/orgs", json={"name": "Provided"}, headers=_bearer(token))
        assert created.status_code == 201, created.text
        assert created.json()["role"] == "owner"
        org = created.json()["id"]
        project = await client.post(
            f"/orgs/{org}/projects", json={"name": "First"}, headers=_bearer(token)
        )
        assert project.status_code == 201, project.text
        listed = await client.get(f"/orgs/{org}/projects", headers=_bearer(token))
        assert listed.status_code == 200
        assert [p["id"] for p in listed.json()["items"]] == [project.json()["id"]]
        # A later, fresh token of the same subject is the same user.
        again = await client.get(
            "/users/me", headers=_bearer(_idp_token(sub=subject, email="ida@elsewhere.test"))
        )
        assert again.json()["id"] == me["id"]


async def test_an_account_registered_here_is_linked_by_a_verified_email(
    api: Api, client: httpx.AsyncClient, database_url: str
) -> None:
    local = await api.user()  # registered with a password before the switch to the provider
    org = await api.org(local, "Before the switch")
    verified = _idp_token(sub=f"okta|{uuid.uuid4().hex}", email=local.email, email_verified=True)
    unverified = _idp_token(sub=f"okta|{uuid.uuid4().hex}", email=local.email)
    async with running(_idp_app(database_url)) as idp_client:
        linked = await idp_client.get("/users/me", headers=_bearer(verified))
        orgs = await idp_client.get("/orgs", headers=_bearer(verified))
        refused = await idp_client.get("/users/me", headers=_bearer(unverified))
    assert linked.status_code == 200
    assert linked.json()["id"] == local.id
    assert [o["id"] for o in orgs.json()] == [org]
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"


async def test_an_idp_token_without_an_email_claim_is_refused_clearly(database_url: str) -> None:
    async with running(_idp_app(database_url)) as client:
        response = await client.get("/users/me", headers=_bearer(_idp_token(sub="auth0|x")))
    assert response.status_code == 403
    assert "email" in response.json()["detail"]


@pytest.mark.parametrize(
    "password", ["short", "Password123", "qwertyuiop", "correct horse battery staple"]
)
async def test_weak_passwords_are_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(
        "/auth/register", json={"email": f"{uuid.uuid4().hex}@example.com", "password": password}
    )
    assert response.status_code == 422, password


def _address() -> str:
    """A client address of the test's own: Redis counters of other tests and runs never mix."""
    a, b, c = uuid.uuid4().bytes[:3]
    return f"10.{a}.{b}.{c}"


THROTTLE_STORES = [
    pytest.param(None, id="in-process"),
    pytest.param(
        REDIS_URL,
        id="redis",
        marks=[pytest.mark.redis, pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL unset")],
    ),
]


def _throttled(
    database_url: str,
    redis_url: str | None = None,
    *,
    per_account: str = "1000 per hour",
    per_address: str = "1000 per hour",
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of an app with these login limits, from an address of its own."""
    settings = make_settings(
        database_url,
        redis_url=redis_url,
        login_limit_per_account=per_account,
        login_limit_per_address=per_address,
    )
    return running(create_app(settings), client_address=_address())


async def _throttled_app_run(database_url: str, redis_url: str | None) -> None:
    async with _throttled(database_url, redis_url, per_account="3 per hour") as client:
        api = Api(client)
        user = await api.user(f"throttle-{uuid.uuid4().hex[:8]}@example.com")
        for _ in range(3):
            bad = await client.post(
                "/auth/token", data={"username": user.email, "password": "wrong"}
            )
            assert bad.status_code == 401
        blocked = await client.post(
            "/auth/token", data={"username": user.email, "password": PASSWORD}
        )
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        assert blocked.headers["content-type"] == "application/problem+json"
        other = await api.user()  # another account from the same address is unaffected
        assert other.token


@pytest.mark.parametrize("redis_url", THROTTLE_STORES)
async def test_login_is_throttled_per_account(database_url: str, redis_url: str | None) -> None:
    await _throttled_app_run(database_url, redis_url)


async def test_login_still_works_when_redis_is_down(database_url: str) -> None:
    # Port 9 refuses connections: the throttle falls back to process memory.
    await _throttled_app_run(database_url, "redis://127.0.0.1:9/0")


@pytest.mark.parametrize("redis_url", THROTTLE_STORES)
async def test_concurrent_guesses_at_one_account_pass_at_most_the_limit(
    database_url: str, redis_url: str | None
) -> None:
    async with _throttled(database_url, redis_url, per_account="3 per hour") as client:
        user = await Api(client).user(f"burst-{uuid.uuid4().hex[:8]}@example.com")
        guesses = await asyncio.gather(
            *(
                client.post("/auth/token", data={"username": user.email, "password": f"no{i}"})
                for i in range(12)
            )
        )
        assert sorted(r.status_code for r in guesses) == [401] * 3 + [429] * 9
        # The account is now closed for the window, even to the right password.
        right = await client.post(
            "/auth/token", data={"username": user.email, "password": PASSWORD}
        )
        assert right.status_code == 429


@pytest.mark.parametrize("redis_url", THROTTLE_STORES)
async def test_concurrent_guesses_from_one_address_pass_at_most_the_limit(
    database_url: str, redis_url: str | None
) -> None:
    async with _throttled(database_url, redis_url, per_address="3 per hour") as client:
        # Password spraying: one guess at each of many accounts.
        guesses = await asyncio.gather(
            *(
                client.post(
                    "/auth/token",
                    data={
                        "username": f"spray-{i}-{uuid.uuid4().hex[:6]}@example.com",
                        "password": "x",
                    },
                )
                for i in range(12)
            )
        )
    assert sorted(r.status_code for r in guesses) == [401] * 3 + [429] * 9


async def test_successful_logins_do_not_use_up_the_address_budget(database_url: str) -> None:
    async with _throttled(database_url, per_address="2 per hour") as client:
        api = Api(client)
        users = [await api.user() for _ in range(4)]  # four good logins, twice the limit
        for _ in range(2):
            wrong = await client.post(
                "/auth/token", data={"username": users[0].email, "password": "wrong"}
            )
            assert wrong.status_code == 401
        third = await client.post(
            "/auth/token", data={"username": users[1].email, "password": "wrong"}
        )
    assert third.status_code == 429


async def test_per_address_limit(database_url: str) -> None:
    settings = make_settings(database_url, login_limit_per_address="2 per minute")
    async with running(create_app(settings)) as client:
        for _ in range(2):
            await client.post("/auth/token", data={"username": "x@example.com", "password": "x"})
        third = await client.post(
            "/auth/token", data={"username": "y@example.com", "password": "x"}
        )
    assert third.status_code == 429


@pytest.mark.parametrize(
    "form",
    [
        {"username": "a" * 100_000 + "@example.com", "password": "x"},
        {"username": "a@example.com", "password": "x" * 5000},
        {"username": "", "password": "x"},
    ],
    ids=["huge-username", "huge-password", "empty-username"],
)
async def test_overlong_login_fields_are_a_422(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
