"""The deployment as its containers run it (docker-compose.yml, Dockerfile), without a
Docker engine: `migrate`, `api` and `worker` as an unprivileged user, the code
read-only, every setting from the environment, against servers already running."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import EmbeddedStack
from devstack.ports import choose_port
from tests.streams import TERMINAL

ROOT = Path(__file__).resolve().parents[2]
USER = "order-engine-ci"
SECRET = "a-deployment-secret"
# What the image copies: the Dockerfile's COPY lines, so that the two never drift apart
# (pyproject.toml, README.md and requirements.lock are only for the install).
CODE = tuple(
    name
    for line in (ROOT / "Dockerfile").read_text().splitlines()
    if line.startswith("COPY ") and "--from" not in line
    for name in line.split()[1:-1]
    if name not in ("pyproject.toml", "README.md", "requirements.lock")
)
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON.exists(),
    reason="runs processes as another user: needs root, and a Python that user can run (Debian's)",
)


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A read-only copy of the code and a Python for the user: the system interpreter, with
    the project's installed dependencies on its path (the image has them installed)."""
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    app.mkdir()
    for name in CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, app / name)
    python = root / "python"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(python)], check=True)
    site = next((python / "lib").glob("python3*/site-packages"))
    # A plain path entry: the project's own editable-install hook in there does not run,
    # so the packages come from the read-only copy.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for path in [*app.rglob("*"), app]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    _make_reachable(Path(sysconfig.get_paths()["purelib"]))
    _make_reachable(root)
    try:
        yield root
    finally:
        for path in [app, *app.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def _make_reachable(path: Path) -> None:
    """o+x on every ancestor (a fresh clone may sit under a 0700 home); nothing made readable."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def test_migrate_api_and_worker_run_as_the_container_runs_them(
    stack: EmbeddedStack, user: pwd.struct_passwd, image: Path
) -> None:
    port = choose_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONDONTWRITEBYTECODE": "1",
        **stack.urls.as_env(),
        "ORDER_ENGINE_API_KEY_SECRET": SECRET,
        "ORDER_ENGINE_API_HOST": "127.0.0.1",
        "ORDER_ENGINE_API_PORT": str(port),
        "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
        "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
        "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
        "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
    }
    app, python = image / "app", str(image / "python" / "bin" / "python")

    def start(*args: str, log: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [python, "-m", "cli", *args],
            stdout=log.open("w") if log is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
            text=True,
            cwd=app,
            env=env,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
        )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        process = start(*args)
        stdout, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    logs = image / "logs"
    logs.mkdir(exist_ok=True)
    started: list[subprocess.Popen[str]] = []
    try:
        for role in ("worker", "api"):
            started.append(start(role, log=logs / f"{role}.log"))
        api_url = f"http://127.0.0.1:{port}"
        _wait_ready(api_url, started, logs)
        made = run("keys", "create", "--name", "deployer", "--operator")
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            order_id = client.post(
                "/orders", json={"token_in": "SOL", "token_out": "USDC", "amount": "1"}
            ).json()["order_id"]
            deadline = time.monotonic() + 60
            while (status := client.get(f"/orders/{order_id}").json()["status"]) not in TERMINAL:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
        assert status == "CONFIRMED"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(35)
    # Nothing was written next to the code, no key was made by a production process, and
    # no log holds a whole key.
    assert not list(app.rglob(".order-engine")) and not list(app.rglob("__pycache__"))
    text = "".join(path.read_text() for path in logs.iterdir()) + migrated.stdout + migrated.stderr
    assert key not in text and "Created a local operator API key" not in text


def _wait_ready(api_url: str, started: list[subprocess.Popen[str]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in started:
            if process.poll() is not None:
                pytest.fail(
                    f"exited with {process.returncode}:\n" + "\n".join(p.read_text() for p in logs.iterdir())
                )
        try:
            if httpx.get(f"{api_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("the API was not ready:\n" + "\n".join(p.read_text() for p in logs.iterdir()))
