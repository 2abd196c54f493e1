"""compose.yaml: valid against the Compose Specification schema (vendored), and scalable, healthy, ordered."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import REPO, SCHEMAS, SERVICE_PORTS, SERVICES, duration_seconds, interpolate, load_json

from recovery_cli.stack import RUNNABLE

pytestmark = pytest.mark.integration

SCALED = ("scheduler", "executor", "webhook-dispatcher")
DEMO = ("stripe-sandbox", "receiver")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict[str, Any]:
    """What `docker compose config` sees with an empty environment: anchors merged, defaults interpolated."""
    return interpolate(raw)


def test_compose_matches_the_compose_specification_schema(compose) -> None:
    schema = load_json(SCHEMAS / "compose-spec.json")
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_catches_mistakes(compose) -> None:
    validator = jsonschema.Draft201909Validator(load_json(SCHEMAS / "compose-spec.json"))
    broken = interpolate(compose)
    broken["services"]["executor"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["executor"]["depends_on"]["mongo"]["condition"] = "healthy"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_scaled_services_have_no_fixed_names_or_host_ports(compose) -> None:
    for name, service in compose["services"].items():
        assert "container_name" not in service, name
    for name in SCALED:
        assert "ports" not in compose["services"][name], f"{name}: --scale needs no host port"
    assert compose["services"]["intake"]["ports"] == ["8080:8080"]


def test_the_four_services_share_one_image_and_run_by_command(compose) -> None:
    images = {compose["services"][name]["image"] for name in SERVICES}
    assert len(images) == 1
    for name in SERVICES:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["build"]["target"] == "runtime"
        assert service["command"] == ["run", name]
        assert name in RUNNABLE, "the recovery CLI knows it"
        assert service["environment"]["HTTP_PORT"] == str(SERVICE_PORTS[name])
        assert service["environment"]["HTTP_HOST"] == "0.0.0.0"


def test_services_wait_for_healthy_infrastructure_and_report_readiness(compose) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
        }, name
        assert service["healthcheck"]["test"] == ["CMD", "python", "/app/healthcheck.py", "/readyz"]
    for name in ("rabbitmq", "mongo", *DEMO):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_stop_grace_covers_the_shutdown_grace(compose) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        grace = float(service["environment"]["SHUTDOWN_GRACE_SECONDS"])
        assert duration_seconds(service["stop_grace_period"]) >= grace + 5, name


def test_rabbitmq_is_4x_with_management_and_prometheus(compose) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    image, _, tag = rabbitmq["image"].partition(":")
    assert image == "rabbitmq" and tag.startswith("4.") and tag.endswith("-management")
    targets = {c["target"]: compose["configs"][c["source"]]["file"] for c in rabbitmq["configs"]}
    plugins = (REPO / targets["/etc/rabbitmq/enabled_plugins"]).read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    assert plugins.strip().startswith("[") and plugins.strip().endswith("].")
    for path in targets.values():
        assert (REPO / path).is_file(), path
    url = compose["services"]["executor"]["environment"]["RABBITMQ_URL"]
    assert url.startswith("amqp://") and "@rabbitmq:5672" in url


def test_mongodb_is_a_single_node_replica_set_initiated_by_its_healthcheck(compose) -> None:
    mongo = compose["services"]["mongo"]
    image, _, tag = mongo["image"].partition(":")
    assert image == "mongo" and tag.split(".")[0] in {"7", "8"}
    assert mongo["command"][mongo["command"].index("--replSet") + 1] == "rs0"
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate(" in probe and "rs.status()" in probe and "isWritablePrimary" in probe
    assert "mongo:27017" in probe, "members reachable from the other containers"
    for name in SERVICES:
        assert "replicaSet=rs0" in compose["services"][name]["environment"]["MONGODB_URL"]


def test_the_demo_profile_adds_the_development_peers(compose) -> None:
    for name in DEMO:
        peer = compose["services"][name]
        assert peer["profiles"] == ["demo"]
        assert peer["build"]["target"] == "dev"
        assert peer["command"][:2] == ["run", name] and "0.0.0.0" in peer["command"]
    for name in ("rabbitmq", "mongo", *SERVICES):
        assert "profiles" not in compose["services"][name], "always started"
        assert compose["services"][name].get("build", {}).get("target") != "dev"


def test_environment_comes_from_shared_anchors(raw) -> None:
    text = (REPO / "compose.yaml").read_text()
    assert "x-service-environment: &service-environment" in text
    assert text.count("<<: *service-environment") == len(SERVICES)
    assert any(key.startswith("x-") for key in raw)
