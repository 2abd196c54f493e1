"""deploy/Dockerfile and .dockerignore, checked without a Docker engine: stages, non-root user, health check,
no development packages in the runtime image (by running the Dockerfile's own `uv export` on uv.lock)."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from deploy_support import DEPLOY, REPO, Dockerfile, parse_dockerfile, uv_export_commands
from deploy_support import dockerignore_excludes as excluded

pytestmark = pytest.mark.integration

PRODUCTION_PACKAGES = {
    "recovery-contracts",
    "recovery-runtime",
    "recovery-intake",
    "recovery-scheduler",
    "recovery-executor",
    "recovery-webhook-dispatcher",
    "recovery-analytics",
    "recovery-cli",
}
FORBIDDEN_IN_RUNTIME = ("secantus", "recovery-sandbox", "recovery_sandbox", "pytest", "hypothesis")
BUILD_TOOLS = ("gcc", "build-essential", "apt-get install", "COPY --from=uv", "/uv ", "git ")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DEPLOY / "Dockerfile")


def test_stages_and_the_default_target(dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert names[-1] == "runtime", "the default build target is the production image"
    assert {"build", "base", "dev", "runtime"} <= set(names)
    base = dockerfile.stage("base")
    assert dockerfile.resolve(base.base).startswith("python:3.11-slim")
    assert dockerfile.stage("runtime").base == "base" and dockerfile.stage("dev").base == "base"


def test_final_images_run_as_an_unprivileged_user(dockerfile) -> None:
    base = dockerfile.stage("base")
    assert "--uid 10001" in base.text()
    for name in ("runtime", "dev"):
        users = dockerfile.stage(name).all("USER")
        assert users, name
        assert users[-1].arguments.split(":")[0] == "10001", name


def test_health_check_entrypoint_command_and_labels(dockerfile) -> None:
    base = dockerfile.stage("base")
    (healthcheck,) = base.all("HEALTHCHECK")
    assert "/app/healthcheck.py" in healthcheck.arguments and "/healthz" in healthcheck.arguments
    assert json.loads(base.all("ENTRYPOINT")[-1].arguments) == ["recovery"]
    assert json.loads(base.all("CMD")[-1].arguments) == ["run", "intake"]
    labels = " ".join(label.arguments for label in base.all("LABEL"))
    for key in (
        "org.opencontainers.image.title",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ):
        assert key in labels
    assert any(i.arguments.startswith("deploy/healthcheck.py /app/healthcheck.py") for i in base.all("COPY"))


def test_no_build_tools_or_development_packages_in_the_runtime_image(dockerfile) -> None:
    for name in ("base", "runtime"):
        text = dockerfile.stage(name).text()
        for needle in (*BUILD_TOOLS, *FORBIDDEN_IN_RUNTIME):
            assert needle not in text, f"{name}: {needle}"
    copies = [i.arguments for i in dockerfile.stage("runtime").all("COPY")]
    assert copies == ["--from=build /opt/venv /opt/venv"], "only the production virtualenv"
    build = dockerfile.stage("build").text()
    for segment in build.replace("\n", "&&").split("&&"):
        if "install" in segment:
            assert "secantus" not in segment and "sandbox" not in segment, segment
    assert "COPY tools/sandbox/ " not in build and "COPY tools/ " not in build, "sandbox source stays out"


def test_the_build_installs_only_from_the_lock(dockerfile) -> None:
    commands = uv_export_commands(dockerfile.stage("build"))
    assert len(commands) == 2
    for command in commands:
        assert {"--frozen", "--no-dev"} <= set(command)
        assert command[command.index("--prune") + 1] == "recovery-sandbox"
    text = dockerfile.stage("build").text()
    assert "--require-hashes" in text and "--no-deps" in text
    assert "--no-editable" in text


def exported_packages(command: list[str]) -> set[str]:
    uv = shutil.which("uv")
    assert uv, "uv is needed to check the image's package set"
    args = list(command[2:])
    if "--output-file" in args:
        index = args.index("--output-file")
        del args[index : index + 2]
    result = subprocess.run(
        [
            uv,
            "export",
            "--offline",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            *[a for a in args if a not in {"--no-hashes", "--no-header", "--no-annotate"}],
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    packages = set()
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("./"):
            packages.add(line)
        else:
            packages.add(line.split("==")[0].split(";")[0].strip().lower())
    return packages


def test_the_runtime_package_set_has_the_services_and_no_development_packages(dockerfile) -> None:
    third_party, workspace = (exported_packages(c) for c in uv_export_commands(dockerfile.stage("build")))
    members = {path.rsplit("/", 1)[-1] for path in workspace if path.startswith("./")}
    services = {"intake", "scheduler", "executor", "webhook-dispatcher", "analytics"}
    assert members == {"contracts", "runtime", "cli", *services}
    assert not any(p.startswith("./") for p in third_party), "members are installed in the second step"
    for forbidden in ("secantusdb", "recovery-sandbox", "playwright", "pytest", "hypothesis", "ruff"):
        assert forbidden not in third_party, forbidden
    # python-multipart and jinja2: the console's sign-in form and its pages (intake).
    for needed in (
        "faststream",
        "pymongo",
        "fastapi",
        "uvicorn",
        "prometheus-client",
        "aiohttp",
        "jinja2",
        "python-multipart",
    ):
        assert needed in third_party, needed


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    ignore = REPO / ".dockerignore"
    for kept in (
        "pyproject.toml",
        "uv.lock",
        "libs/runtime/src/recovery_runtime/service.py",
        "services/intake/pyproject.toml",
        "tools/cli/src/recovery_cli/main.py",
        "tools/sandbox/pyproject.toml",
        "deploy/healthcheck.py",
    ):
        assert not excluded(ignore, kept), kept
    for dropped in (
        ".venv/bin/python",
        "tests/unit/test_x.py",
        "docs/architecture.md",
        ".git/HEAD",
        "libs/runtime/src/recovery_runtime/__pycache__/x.pyc",
        "deploy/k8s/base/intake.yaml",
        "bench/run.py",
        ".env",
        "services/intake/.venv/x",
    ):
        assert excluded(ignore, dropped), dropped


def test_every_copied_path_exists_and_is_in_the_context(dockerfile) -> None:
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if copy.arguments.startswith("--from="):
                continue
            *sources, _ = copy.arguments.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert not excluded(REPO / ".dockerignore", source.rstrip("/")), source


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_probe(*args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), *args], env=env, capture_output=True, timeout=30
    ).returncode


def test_the_health_probe_script(probe_server) -> None:
    port = str(probe_server)
    assert run_probe("/healthz", "--port", port) == 0
    assert run_probe("/readyz", "--port", port) == 1
    assert run_probe("/healthz", env={"HTTP_PORT": port, "PATH": "/usr/bin:/bin"}) == 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    closed_port = str(server.server_address[1])
    server.server_close()
    assert run_probe("--port", closed_port, "--timeout", "1") == 1


def test_the_dependency_layer_sees_every_workspace_member(dockerfile) -> None:
    """uv resolves the workspace from the members' pyproject.toml files: a new member must be copied too."""
    copied = {c.arguments.split()[0] for c in dockerfile.stage("build").all("COPY")}
    members = {
        str(p.relative_to(REPO)) for g in ("libs/*", "services/*", "tools/*") for p in REPO.glob(f"{g}/pyproject.toml")
    }
    assert members <= copied, members - copied
