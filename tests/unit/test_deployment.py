"""The deployment's files: an image that installs exactly what the lock pins (so an
image built next month has the same dependencies), and a docker-compose.yml whose
engine connects as a role of its own, with every password from the environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")
# `${NAME:?message}`: compose refuses to start while NAME is unset or empty.
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}$")


def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock: per package, its version and its files' hashes."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if pin := PIN.match(line):
            name = canonicalize_name(pin[1])
            pins[name] = (pin[2], [])
        elif line.strip().startswith("--hash=sha256:"):
            pins[name][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return pins


def test_the_lock_pins_every_dependency_of_the_project_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = locked()
    for requirement in map(Requirement, project["project"]["dependencies"]):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, pyproject.toml wants {requirement}"
        )
    # The build's own requirement too (the image builds the project without isolation).
    for requirement in map(Requirement, project["build-system"]["requires"]):
        assert canonicalize_name(requirement.name) in pins
    # --require-hashes refuses a pin without a hash.
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, hashes in pins.values() for h in hashes)
    assert all(hashes for _, hashes in pins.values())


def test_the_image_installs_the_lock_on_a_base_pinned_by_digest() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    [base] = [line for line in lines if line.startswith("FROM ")]
    assert re.fullmatch(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64}", base)
    installs = [line for line in lines if line.startswith("RUN pip install")]
    assert installs[0] == "RUN pip install --no-cache-dir --require-hashes -r requirements.lock"
    # The project itself adds nothing the lock does not pin.
    assert all("--no-deps" in line for line in installs[1:]) and len(installs) == 2


def credentials(database_url: str) -> tuple[str, str]:
    """The user and password of a URL whose password may be `${NAME:?message}` (which
    urlsplit would cut at its `?`)."""
    found = re.match(r"^[a-z+]+://([^:@/]+):(\$\{[^}]*\}|[^@]*)@", database_url)
    assert found is not None, database_url
    return found[1], found[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_has_no_password_in_it() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|PWD|SECRET)[A-Z_]*:?-", text), "a secret with a default"
    for name, service in compose()["services"].items():
        environment: dict[str, str] = service.get("environment", {})
        for key, value in environment.items():
            if re.search("PASSWORD|PWD|SECRET", key):
                assert REQUIRED_VARIABLE.match(str(value)), (
                    f"{name}: {key} is not required from the environment"
                )
        if "DATABASE_URL" in environment:
            _, password = credentials(environment["DATABASE_URL"])
            assert REQUIRED_VARIABLE.match(password), f"{name}: DATABASE_URL has a literal password"


def test_the_engine_connects_as_a_role_of_its_own() -> None:
    services = compose()["services"]
    superuser = services["postgresql"]["environment"]["POSTGRES_USER"]
    temporal_user = services["temporal"]["environment"]["POSTGRES_USER"]
    engines = {name: s for name, s in services.items() if "DATABASE_URL" in s.get("environment", {})}
    assert {"migrate", "api", "worker"} <= set(engines)
    for name, service in engines.items():
        user, _ = credentials(service["environment"]["DATABASE_URL"])
        assert user not in (superuser, temporal_user), f"{name} connects as {user}"
        # The role it connects as is the one the roles step makes, before migrations run.
        assert user == services["postgres-roles"]["environment"]["ORDER_ENGINE_DB_USER"]
    assert (
        services["migrate"]["depends_on"]["postgres-roles"]["condition"] == "service_completed_successfully"
    )
