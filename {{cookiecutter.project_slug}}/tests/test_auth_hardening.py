"""JWT variants (RS256 by key and by JWKS), login throttling, password rules, no secrets in logs."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.security.tokens import InvalidTokenError, Tokens

from .api import PASSWORD, Api
from .conftest import REDIS_URL, make_settings, running

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
    token = _idp_token()
    assert tokens.verify(token).user_id == uuid.UUID(
        jwt.decode(token, options={"verify_signature": False})["sub"]
    )
    assert not tokens.can_mint


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

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


async def test_rs256_by_jwks_url(jwks_url: str) -> None:
    tokens = Tokens(_rs256_settings(jwt_jwks_url=jwks_url))
    token = _idp_token()
    assert (await tokens.verify_async(token)).user_id
    with pytest.raises(InvalidTokenError):
        await tokens.verify_async(_idp_token(private=_rsa()[0]))


async def test_local_login_is_disabled_when_the_idp_issues_tokens(database_url: str) -> None:
    app = create_app(make_settings(database_url, jwt_algorithm="RS256", jwt_public_key=PUBLIC))
    async with running(app) as client:
        response = await client.post("/auth/token", data={"username": "a@b.co", "password": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "password", ["short", "Password123", "qwertyuiop", "correct horse battery staple"]
)
async def test_weak_passwords_are_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(
        "/auth/register", json={"email": f"{uuid.uuid4().hex}@example.com", "password": password}
    )
    assert response.status_code == 422, password


async def _throttled_app_run(database_url: str, redis_url: str | None) -> None:
    settings = make_settings(
        database_url,
        redis_url=redis_url,
        login_limit_per_account="3 per minute",
        login_limit_per_address="1000 per minute",
    )
    async with running(create_app(settings)) as client:
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


async def test_login_is_throttled_per_account_in_process(database_url: str) -> None:
    await _throttled_app_run(database_url, None)


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
async def test_login_is_throttled_per_account_in_redis(database_url: str) -> None:
    await _throttled_app_run(database_url, REDIS_URL)


async def test_login_still_works_when_redis_is_down(database_url: str) -> None:
    # Port 9 refuses connections: the throttle falls back to process memory.
    await _throttled_app_run(database_url, "redis://127.0.0.1:9/0")


async def test_per_address_limit(database_url: str) -> None:
    settings = make_settings(database_url, login_limit_per_address="2 per minute")
    async with running(create_app(settings)) as client:
        for _ in range(2):
            await client.post("/auth/token", data={"username": "x@example.com", "password": "x"})
        third = await client.post(
            "/auth/token", data={"username": "y@example.com", "password": "x"}
        )
    assert third.status_code == 429


async def test_passwords_and_tokens_never_reach_the_logs(
    api: Api, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        user = await api.user()
        await client.get("/users/me", headers=user.headers)
        await client.post(
            "/auth/token", data={"username": user.email, "password": "wrong-" + PASSWORD}
        )
        logging.getLogger("{{ cookiecutter.package_name }}.test").info(
            "oops", extra={"authorization": user.headers["Authorization"]}
        )
        import structlog

        structlog.get_logger("{{ cookiecutter.package_name }}.test").info("login", password=PASSWORD, token=user.token)
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    formatted = caplog.text
    for secret in (PASSWORD, user.token):
        assert secret not in formatted
    assert "[redacted]" in text
