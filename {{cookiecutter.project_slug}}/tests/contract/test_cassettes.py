"""The recorded cassettes themselves: nothing secret kept, nothing the project template would
read as its own syntax (they are shipped inside it), every scenario present."""

from __future__ import annotations

from pathlib import Path

import yaml

from .conftest import KEPT_REQUEST_HEADERS, KEPT_RESPONSE_HEADERS

CASSETTES = Path(__file__).with_name("cassettes")


def test_every_contract_test_has_its_cassette() -> None:
    for module in ("test_ai_provider", "test_webhook_receiver"):
        source = Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8")
        taped = [
            line.split("def ", 1)[1].split("(", 1)[0]
            for previous, line in zip(source.splitlines(), source.splitlines()[2:], strict=False)
            if previous == "@pytest.mark.vcr"
        ]
        assert taped, module
        for name in taped:
            assert (CASSETTES / module / f"{name}.yaml").is_file(), f"{module}::{name}"


def test_cassettes_keep_no_secret_and_no_template_syntax() -> None:
    paths = sorted(CASSETTES.rglob("*.yaml"))
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for syntax in ("{" + "{", "{" + "%", "{" + "#"):
            assert syntax not in text, path
        assert "whsec_" not in text
        for interaction in yaml.safe_load(text)["interactions"]:
            headers = {k.lower(): v for k, v in interaction["request"]["headers"].items()}
            assert headers.pop("authorization", ["Bearer [redacted]"]) == ["Bearer [redacted]"]
            assert set(headers) <= set(KEPT_REQUEST_HEADERS), path
            response = {k.lower() for k in interaction["response"]["headers"]}
            assert response <= set(KEPT_RESPONSE_HEADERS), path
