"""checkov policy CKV_ACME_5: Rollouts take secrets by reference, never as literal values.

A YAML policy cannot filter env entries by name, so this one is Python. checkov imports it
from this folder (`make policy`); it is not part of the service.
"""

from __future__ import annotations

import re
from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

# Variables whose names say they hold a secret or a connection URL (which embeds credentials).
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY|_URL)$")


class RolloutSecretsByReference(BaseK8Check):
    """Fails a Rollout whose container sets a secret-like variable to a literal value."""

    def __init__(self) -> None:
        super().__init__(
            name="Rollouts take secrets by reference, never as literal environment values",
            id="CKV_ACME_5",
            categories=[CheckCategories.KUBERNETES],
            supported_entities=["Rollout"],
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        """FAILED when any container's env gives a secret-like name a `value`."""
        pod = (conf.get("spec") or {}).get("template", {}).get("spec") or {}
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            for var in container.get("env") or []:
                if SECRET_NAME.search(str(var.get("name", ""))) and "value" in var:
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = RolloutSecretsByReference()
