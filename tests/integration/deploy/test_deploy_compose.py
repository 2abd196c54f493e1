"""compose.yaml: valid against the Compose Specification schema (vendored), and scalable, healthy, ordered."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploy_support import (
    DEPLOY,
    FORWARDED_TO,
    REPO,
    SCHEMAS,
    SERVICE_PORTS,
    SERVICES,
    duration_seconds,
    interpolate,
    load_json,
    merge_compose,
    published_ports,
)
from pydantic import ValidationError

from recovery_cli.stack import RUNNABLE
from recovery_executor.settings import ExecutorSettings
from recovery_intake.settings import IntakeSettings
from recovery_runtime.secrets import SecretBox
from recovery_runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

SCALED = ("scheduler", "executor", "webhook-dispatcher")
DEMO = ("stripe-sandbox", "receiver")
# The services that call Stripe (STRIPE_API_BASE): the executor's connector and billing calls, intake's re-read of
# a Stripe Billing invoice when a Stripe `invoice.payment_failed` webhook arrives.
STRIPE_CALLERS: dict[str, type[ServiceSettings]] = {"intake": IntakeSettings, "executor": ExecutorSettings}


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
    assert compose["services"]["intake"]["ports"] == ["127.0.0.1:8080:8080"]


def test_the_five_services_share_one_image_and_run_by_command(compose) -> None:
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


# ---- exposure and production ----------------------------------------------------------------------------------

PRODUCTION_OVERRIDE = DEPLOY / "compose.production.yaml"
PRODUCTION_SECRETS = {
    "ADMIN_API_KEY": "a" * 64,
    "API_KEY_HASH_SECRET": "h" * 64,
    "INTERNAL_API_TOKEN": "i" * 44,
    "SECRETS_MASTER_KEY": "bWFzdGVyLWtleS1vZi0zMi1ieXRlcy1mb3ItdGVzdHM=",
    "RABBITMQ_PASSWORD": "p" * 32,
}


def settings_of(environment: dict[str, str], model: type[ServiceSettings]) -> ServiceSettings:
    """A service's settings from the environment compose gives its container (keyword arguments, so that this
    process's own environment does not decide)."""
    return model(**{key.lower(): value for key, value in environment.items()})


def test_every_published_port_listens_on_loopback_unless_told_otherwise(raw, compose) -> None:
    published = {name: published_ports(service) for name, service in compose["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"intake", "rabbitmq", "jaeger", *DEMO}
    for name, ports in published.items():
        for port in ports:
            assert port.host_ip == "127.0.0.1", f"{name}: {port} is published on every host interface"
    told = interpolate(raw, {"INTAKE_BIND": "0.0.0.0", "INTAKE_PORT": "9080"})
    assert told["services"]["intake"]["ports"] == ["0.0.0.0:9080:8080"]
    assert told["services"]["rabbitmq"]["ports"] == compose["services"]["rabbitmq"]["ports"]


def test_every_service_sends_its_traces_to_jaeger_unless_told_otherwise(raw, compose) -> None:
    for name in SERVICES:
        settings = settings_of(compose["services"][name]["environment"], ServiceSettings)
        endpoint = urlsplit(str(settings.otel_exporter_otlp_endpoint))
        assert (endpoint.hostname, endpoint.port) == ("jaeger", 4318), name
    assert "4318" in compose["services"]["jaeger"]["expose"]
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    off = interpolate(raw, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    for name in SERVICES:
        assert settings_of(off["services"][name]["environment"], ServiceSettings).otel_exporter_otlp_endpoint == ""


def test_intake_forwards_to_the_services_owning_the_events_and_recoveries(compose) -> None:
    environment = compose["services"]["intake"]["environment"]
    for variable, owner in FORWARDED_TO:
        url = urlsplit(environment[variable])
        assert url.hostname == owner, f"{variable}: the compose service name (every replica answers)"
        assert url.port == SERVICE_PORTS[owner]
        assert str(url.port) in compose["services"][owner]["expose"]


def test_every_stripe_caller_reaches_the_demo_sandbox_unless_told_otherwise(raw, compose) -> None:
    command = compose["services"]["stripe-sandbox"]["command"]
    sandbox_port = command[command.index("--port") + 1]
    for name, model in STRIPE_CALLERS.items():
        environment = compose["services"][name]["environment"]
        assert "STRIPE_API_BASE" in environment, f"{name} calls Stripe: without it, the real api.stripe.com"
        url = urlsplit(settings_of(environment, model).stripe_api_base)
        assert (url.scheme, url.hostname, str(url.port)) == ("http", "stripe-sandbox", sandbox_port), name
    told = interpolate(raw, {"STRIPE_API_BASE": "https://api.stripe.com"})
    for name, model in STRIPE_CALLERS.items():
        assert settings_of(told["services"][name]["environment"], model).stripe_api_base == "https://api.stripe.com"


def test_the_environment_switch_reaches_every_service(raw, compose) -> None:
    for name in SERVICES:
        assert compose["services"][name]["environment"]["API_KEY_ENVIRONMENT"] == "snd", name
    production = interpolate(raw, {"API_KEY_ENVIRONMENT": "prd"})
    for name in SERVICES:
        assert production["services"][name]["environment"]["API_KEY_ENVIRONMENT"] == "prd", name


def test_with_prd_the_services_refuse_compose_development_secrets(raw) -> None:
    production = interpolate(raw, {"API_KEY_ENVIRONMENT": "prd"})["services"]
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        settings_of(production["intake"]["environment"], IntakeSettings)
    for name in SERVICES:
        with pytest.raises(ValidationError, match="INTERNAL_API_TOKEN"):
            settings_of(production[name]["environment"], IntakeSettings if name == "intake" else ServiceSettings)
    development = interpolate(raw)["services"]["intake"]["environment"]
    assert settings_of(development, IntakeSettings).api_key_environment == "snd", "development starts as before"


def production_compose(environment: dict[str, str]) -> dict[str, Any]:
    override = yaml.safe_load(PRODUCTION_OVERRIDE.read_text())
    return interpolate(merge_compose(yaml.safe_load((REPO / "compose.yaml").read_text()), override), environment)


@pytest.mark.parametrize("variable", sorted(PRODUCTION_SECRETS))
def test_the_production_override_refuses_to_start_without_each_secret(variable) -> None:
    for missing in ({}, {variable: ""}):
        environment = {key: value for key, value in PRODUCTION_SECRETS.items() if key != variable} | missing
        with pytest.raises(KeyError, match=f"required variable {variable}: set {variable}"):
            production_compose(environment)


def test_the_production_override_runs_prd_with_the_given_secrets(compose) -> None:
    production = production_compose(PRODUCTION_SECRETS)
    validator = jsonschema.Draft201909Validator(load_json(SCHEMAS / "compose-spec.json"))
    errors = sorted(validator.iter_errors(production), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    services = production["services"]
    for name in SERVICES:
        environment = services[name]["environment"]
        assert environment["API_KEY_ENVIRONMENT"] == "prd", name
        assert environment["INTERNAL_API_TOKEN"] == PRODUCTION_SECRETS["INTERNAL_API_TOKEN"], name
        assert environment["SECRETS_MASTER_KEY"] == PRODUCTION_SECRETS["SECRETS_MASTER_KEY"], name
        assert f":{PRODUCTION_SECRETS['RABBITMQ_PASSWORD']}@rabbitmq:5672/" in environment["RABBITMQ_URL"], name
        assert not [key for key, value in environment.items() if "development" in str(value)], name
        settings = settings_of(environment, IntakeSettings if name == "intake" else ServiceSettings)  # accepted
        assert SecretBox.from_settings(settings) is not None, name
    assert services["intake"]["environment"]["ADMIN_API_KEY"] == PRODUCTION_SECRETS["ADMIN_API_KEY"]
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == PRODUCTION_SECRETS["RABBITMQ_PASSWORD"]
    for name in ("webhook-dispatcher", "executor"):  # the two that call merchants' URLs: public addresses only
        assert services[name]["environment"]["OUTBOUND_ALLOWED_CIDRS"] == "", name
    for name in STRIPE_CALLERS:  # the real Stripe API, not the demo sandbox
        assert services[name]["environment"]["STRIPE_API_BASE"] == "https://api.stripe.com", name
    assert services["intake"]["ports"] == compose["services"]["intake"]["ports"] == ["127.0.0.1:8080:8080"]
