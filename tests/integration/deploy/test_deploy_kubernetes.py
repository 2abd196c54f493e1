"""deploy/k8s: rendered like `kustomize build`, validated against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields fail) and the KEDA schema, then checked for what this system needs: probes, grace,
security, secrets by reference, one autoscaler per service, KEDA on each consumer's own queue."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from deploy_support import (
    CONSUMERS_SCALED_ON_QUEUES,
    K8S,
    QUEUE_PREFIX,
    SCHEMAS,
    SERVICE_PORTS,
    SERVICES,
    Doc,
    KustomizeError,
    load_json,
    of_kind,
    render,
)

from recovery_runtime.topology import QUEUES

pytestmark = pytest.mark.integration

KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")
DEV_NAMESPACE = "recovery-dev"
SECRET_KEYS = {  # secret name -> keys the manifests may reference (docs/deployment.md lists them)
    "recovery-intake": {"RABBITMQ_URL", "MONGODB_URL", "ADMIN_API_KEY", "API_KEY_HASH_SECRET"},
    "recovery-scheduler": {"RABBITMQ_URL", "MONGODB_URL"},
    "recovery-executor": {"RABBITMQ_URL", "MONGODB_URL"},
    "recovery-webhook-dispatcher": {"RABBITMQ_URL", "MONGODB_URL"},
    "recovery-analytics": {"RABBITMQ_URL", "MONGODB_URL"},
    "recovery-master-key": {"SECRETS_MASTER_KEY"},
    "recovery-internal-token": {"INTERNAL_API_TOKEN"},
    "recovery-keda-rabbitmq": {"host"},
    "recovery-topology": {"RABBITMQ_URL"},
}
SECRET_VARIABLES = {
    "RABBITMQ_URL",
    "MONGODB_URL",
    "ADMIN_API_KEY",
    "API_KEY_HASH_SECRET",
    "SECRETS_MASTER_KEY",
    "INTERNAL_API_TOKEN",
}
MAIN_QUEUE = {
    "scheduler": "scheduler.recovery-scheduled",
    "executor": "executor.execute-retry",
    "webhook-dispatcher": "dispatcher.deliver-webhook",
    "analytics": "analytics.attempt-failed",
}


def rendered_dev() -> list[Doc]:
    return render(K8S / "overlays" / "dev")


def rendered_base_with_hpa_fallback() -> list[Doc]:
    return render(K8S / "base", extra_components=(K8S / "components" / "hpa-fallback",))


def rendered_dev_with_hpa_fallback(tmp_path: Path) -> list[Doc]:
    """The documented switch: the dev overlay with components/hpa-fallback instead of components/keda."""
    overlay = K8S / "overlays" / "dev"
    text = (overlay / "kustomization.yaml").read_text()
    text = text.replace("- ../../components/keda\n", "- ../../components/hpa-fallback\n", 1)
    lines = [line for line in text.splitlines() if "patches/scaledobject-" not in line]
    copy_dir = tmp_path / "deploy" / "k8s" / "overlays" / "dev-hpa"
    copy_dir.mkdir(parents=True)
    (copy_dir / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    for item in overlay.rglob("*.yaml"):
        if item.name != "kustomization.yaml":
            target = copy_dir / item.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(item.read_text())
    # ../../base and ../../components resolve against the real tree through symlinks.
    (tmp_path / "deploy" / "k8s" / "base").symlink_to(K8S / "base")
    (tmp_path / "deploy" / "k8s" / "components").symlink_to(K8S / "components")
    return render(copy_dir)


RENDERINGS = {
    "overlays/dev": rendered_dev,
    "base+hpa-fallback": rendered_base_with_hpa_fallback,
    "base": lambda: render(K8S / "base"),
}


@pytest.fixture(scope="module")
def keda_validator() -> jsonschema.Draft202012Validator:
    schema = load_json(SCHEMAS / "keda-v2-subset.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(doc: Doc, version: str, keda_validator: jsonschema.Draft202012Validator) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        errors = sorted(keda_validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors
        )
        return
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): {error}")


# ---- schemas --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_rendered_manifests_match_the_kubernetes_and_keda_schemas(rendering, version, keda_validator) -> None:
    docs = RENDERINGS[rendering]()
    assert docs
    for doc in docs:
        validate(doc, version, keda_validator)


def test_the_documented_switch_to_the_hpa_fallback_renders_and_validates(tmp_path, keda_validator) -> None:
    docs = rendered_dev_with_hpa_fallback(tmp_path)
    assert not of_kind(docs, "ScaledObject")
    for doc in docs:
        validate(doc, KUBERNETES_VERSIONS[0], keda_validator)
    assert_one_autoscaler_per_service(docs)


def test_the_schemas_catch_mistakes(keda_validator) -> None:
    docs = rendered_dev()
    deployment = of_kind(docs, "Deployment")["recovery-executor"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # typo: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    scaled = of_kind(docs, "ScaledObject")["recovery-executor"]
    scaled["spec"]["triggers"][0]["metadata"]["value"] = 100  # metadata values are strings
    scaled["spec"]["cooldownPeriods"] = 10
    assert len(list(keda_validator.iter_errors(scaled))) >= 2


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(KustomizeError, match="namePrefix"):
        render(tmp_path)


# ---- structure ------------------------------------------------------------------------------------------------


def test_base_is_namespace_agnostic_and_the_dev_overlay_sets_one() -> None:
    for doc in render(K8S / "base"):
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
    docs = rendered_dev()
    assert of_kind(docs, "Namespace").keys() == {DEV_NAMESPACE}
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == DEV_NAMESPACE, doc["metadata"]["name"]


def test_every_service_has_a_deployment_service_and_disruption_budget() -> None:
    docs = rendered_dev()
    deployments, services, budgets = (of_kind(docs, k) for k in ("Deployment", "Service", "PodDisruptionBudget"))
    for name in SERVICES:
        full = f"recovery-{name}"
        deployment = deployments[full]
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template_labels.items()
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        assert services[full]["spec"]["selector"] == selector
        port = services[full]["spec"]["ports"][0]
        assert port["port"] == SERVICE_PORTS[name] and port["targetPort"] == "http"
        assert budgets[full]["spec"]["selector"]["matchLabels"] == selector
        # maxUnavailable (not minAvailable): a single replica never blocks a node drain.
        assert budgets[full]["spec"].get("maxUnavailable") == 1


def containers_by_service(docs: list[Doc]) -> dict[str, tuple[Doc, Doc]]:
    return {
        name: (deployment, deployment["spec"]["template"]["spec"]["containers"][0])
        for name, deployment in ((n, of_kind(docs, "Deployment")[f"recovery-{n}"]) for n in SERVICES)
    }


def test_containers_run_their_service_with_probes_resources_and_ports() -> None:
    for name, (_, container) in containers_by_service(rendered_dev()).items():
        assert container["args"] == ["run", name]
        assert container["image"] == "recovery-engine:dev"
        env = {e["name"]: e for e in container["env"]}
        assert env["HTTP_PORT"]["value"] == str(SERVICE_PORTS[name])
        assert container["ports"][0]["containerPort"] == SERVICE_PORTS[name]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys()


def workloads(docs: list[Doc]) -> dict[str, tuple[Doc, Doc]]:
    """Every pod template's owner and its container: the five services' Deployments and the topology Job."""
    job = of_kind(docs, "Job")["recovery-topology"]
    return {**containers_by_service(docs), "topology": (job, job["spec"]["template"]["spec"]["containers"][0])}


def test_pods_are_locked_down() -> None:
    for name, (deployment, container) in workloads(rendered_dev()).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, "a writable /tmp on a read-only root"


def test_termination_grace_covers_the_shutdown_grace() -> None:
    docs = rendered_dev()
    grace = float(of_kind(docs, "ConfigMap")["recovery-config"]["data"]["SHUTDOWN_GRACE_SECONDS"])
    for name, (deployment, container) in containers_by_service(docs).items():
        pre_stop = 0.0
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if command:
            pre_stop = float(command[-1].rsplit("(", 1)[1].rstrip(")"))
        termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert termination >= grace + pre_stop + 5, f"{name}: {termination}s < {grace}+{pre_stop}+5"
    intake = containers_by_service(docs)["intake"][1]
    assert "preStop" in intake["lifecycle"], "intake leaves the endpoints before the HTTP server stops"


def test_settings_come_from_the_configmap_and_secrets_by_reference() -> None:
    docs = rendered_dev()
    config = of_kind(docs, "ConfigMap")["recovery-config"]["data"]
    assert config["HTTP_HOST"] == "0.0.0.0"
    assert config["LOG_LEVEL"] == "DEBUG", "the dev overlay's patch"
    assert not SECRET_VARIABLES & config.keys(), "secrets never in the ConfigMap"
    for name, (_, container) in containers_by_service(docs).items():
        assert container["envFrom"] == [{"configMapRef": {"name": "recovery-config"}}]
        env = {e["name"]: e for e in container["env"]}
        for variable in SECRET_VARIABLES & env.keys():
            assert "value" not in env[variable], f"{name}: {variable} inline"
        for variable in ("RABBITMQ_URL", "MONGODB_URL"):
            assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == f"recovery-{name}", "own credentials"
        for entry in env.values():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in SECRET_KEYS[ref["name"]], (name, ref)
    intake_env = {e["name"] for e in containers_by_service(docs)["intake"][1]["env"]}
    assert {"ADMIN_API_KEY", "API_KEY_HASH_SECRET", "SECRETS_MASTER_KEY"} <= intake_env


def test_the_topology_is_declared_by_a_job_holding_the_only_broker_credentials_that_may_configure() -> None:
    docs = rendered_dev()
    assert of_kind(docs, "ConfigMap")["recovery-config"]["data"]["DECLARE_TOPOLOGY"] == "false"
    job = of_kind(docs, "Job")["recovery-topology"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["topology", "declare"]
    assert container["image"] == "recovery-engine:dev", "the release's own image: its topology"
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    # UNDEPLOYED_SERVICES reaches the Job as it reaches the services.
    assert container["envFrom"] == [{"configMapRef": {"name": "recovery-config"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env["RABBITMQ_URL"]["valueFrom"]["secretKeyRef"] == {"name": "recovery-topology", "key": "RABBITMQ_URL"}
    assert env.keys() == {"RABBITMQ_URL"}, "the Job needs the broker and nothing else"
    for name, (_, service) in containers_by_service(docs).items():
        refs = {e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in service["env"]}
        assert "recovery-topology" not in refs, name


def test_secret_names_are_documented() -> None:
    guide = (K8S.parents[1] / "docs" / "deployment.md").read_text()
    for secret, keys in SECRET_KEYS.items():
        assert secret in guide, secret
        for key in keys:
            assert key in guide, key


# ---- autoscaling ----------------------------------------------------------------------------------------------


def assert_one_autoscaler_per_service(docs: list[Doc]) -> None:
    targets: list[str] = []
    for hpa in of_kind(docs, "HorizontalPodAutoscaler").values():
        targets.append(hpa["spec"]["scaleTargetRef"]["name"])
    for scaled in of_kind(docs, "ScaledObject").values():
        targets.append(scaled["spec"]["scaleTargetRef"]["name"])
    assert sorted(targets) == sorted(f"recovery-{n}" for n in SERVICES)
    deployments = of_kind(docs, "Deployment")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_keda_scales_each_consumer_on_its_own_queue_counting_unacked() -> None:
    docs = rendered_dev()
    assert_one_autoscaler_per_service(docs)
    assert (
        of_kind(docs, "HorizontalPodAutoscaler")["recovery-intake"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    ), "intake (HTTP-facing) scales on CPU"
    scaled_objects = of_kind(docs, "ScaledObject")
    authentications = of_kind(docs, "TriggerAuthentication")
    deployments = of_kind(docs, "Deployment")
    assert sorted(scaled_objects) == sorted(f"recovery-{n}" for n in CONSUMERS_SCALED_ON_QUEUES)
    for name in CONSUMERS_SCALED_ON_QUEUES:
        spec = scaled_objects[f"recovery-{name}"]["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["cooldownPeriod"] > 0
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "rabbitmq"
        assert metadata["protocol"] == "http", "the management API counts unacked messages too"
        assert metadata["mode"] == "QueueLength"
        assert float(metadata["value"]) > 0
        assert metadata["queueName"] == MAIN_QUEUE[name]
        assert metadata["queueName"] in QUEUES, "a queue of recovery_runtime.topology"
        assert metadata["queueName"].split(".")[0] == QUEUE_PREFIX[name], "its own queue"
        assert "host" not in metadata, "the management URL carries credentials: from a Secret only"
        known = {
            "host",
            "protocol",
            "mode",
            "value",
            "activationValue",
            "queueName",
            "vhostName",
            "useRegex",
            "excludeUnacknowledged",
            "pageSize",
            "operation",
            "timeout",
            "unsafeSsl",
            "queueLength",
        }
        assert metadata.keys() <= known
        auth = authentications[trigger["authenticationRef"]["name"]]["spec"]
        assert {"parameter": "host", "name": "recovery-keda-rabbitmq", "key": "host"} in auth["secretTargetRef"]


def test_the_hpa_fallback_covers_the_consumers() -> None:
    docs = rendered_base_with_hpa_fallback()
    assert not of_kind(docs, "ScaledObject")
    assert_one_autoscaler_per_service(docs)
