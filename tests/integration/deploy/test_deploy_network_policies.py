"""deploy/k8s NetworkPolicies: evaluated offline (deploy_support.connection_allowed implements the
networking.k8s.io/v1 semantics: policies add up, a connection needs the source's egress and the destination's
ingress) over the rendered manifests, against pods and addresses standing for intake, the other services,
Prometheus, DNS, the broker, the database, Stripe and attackers' targets."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest
from deploy_support import (
    FORWARDED_TO,
    K8S,
    SERVICE_PORTS,
    SERVICES,
    Doc,
    Endpoint,
    connection_allowed,
    external,
    of_kind,
    pod,
    policies_selecting,
    policy_types,
    render,
)

pytestmark = pytest.mark.integration

NAMESPACE = "recovery-dev"
# The ranges the executor and the dispatcher must not reach through the network policy (RFC 1918, link-local
# with the cloud metadata address, CGNAT); OUTBOUND_ALLOWED_CIDRS is the application's finer allow-list.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
PRIVATE_TARGETS = (
    "10.0.0.5",
    "10.96.0.1",
    "172.16.4.4",
    "172.31.255.1",
    "192.168.1.10",
    "169.254.169.254",
    "100.64.0.7",
)
PUBLIC_TARGETS = ("54.187.174.169", "93.184.216.34", "8.8.8.8")
CALLED_BY_INTAKE = {owner for _, owner in FORWARDED_TO}
# Stripe (intake's Stripe Billing invoice reads; the executor's calls), record backs, merchants' webhooks.
EGRESS_TO_INTERNET = {"intake", "executor", "webhook-dispatcher"}
STRIPE_CALLERS = ("intake", "executor")


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render(K8S / "overlays" / "dev")


def recovery_pod(docs: list[Doc], name: str, ip: str = "", namespace: str = NAMESPACE) -> Endpoint:
    deployment = of_kind(docs, "Deployment")[f"recovery-{name}"]
    template = deployment["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"] if "name" in p}
    address = ip or f"10.0.1.{10 + SERVICES.index(name)}"
    return pod(namespace, address, template["metadata"]["labels"], ports)


def peers(docs: list[Doc]) -> dict[str, Endpoint]:
    """Who may try to connect: the five services, a stranger in the namespace, pods elsewhere, the internet."""
    return {
        **{name: recovery_pod(docs, name) for name in SERVICES},
        "other pod in the namespace": pod(NAMESPACE, "10.0.1.50", {"app": "debug"}),
        "monitoring": pod("monitoring", "10.0.2.5", {"app.kubernetes.io/name": "prometheus"}),
        "other namespace": pod("default", "10.0.3.5", {"app": "anything"}),
        "other namespace, same labels": pod(
            "elsewhere",
            "10.0.3.6",
            {"app.kubernetes.io/name": "recovery-engine", "app.kubernetes.io/component": "intake"},
        ),
        "internet": external("203.0.113.9"),
        "private address": external("10.20.30.40"),
    }


def admitted(docs: list[Doc], target: str, port: int) -> set[str]:
    destination = recovery_pod(docs, target)
    return {name for name, peer in peers(docs).items() if connection_allowed(docs, peer, destination, port)}


# ---- coverage -------------------------------------------------------------------------------------------------


RENDERINGS = {
    "overlays/dev": lambda: render(K8S / "overlays" / "dev"),
    "base": lambda: render(K8S / "base"),
    "base+hpa-fallback": lambda: render(K8S / "base", extra_components=(K8S / "components" / "hpa-fallback",)),
}


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_recovery_pod_is_under_a_default_deny_for_both_directions(rendering) -> None:
    docs = RENDERINGS[rendering]()
    policies = of_kind(docs, "NetworkPolicy")
    assert policies, "the base ships NetworkPolicies, so every overlay gets them"
    for policy in policies.values():
        assert policy["apiVersion"] == "networking.k8s.io/v1"
    for deployment in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]:
        template = deployment["spec"]["template"]["metadata"]["labels"]
        namespace = deployment["metadata"].get("namespace", "")
        target = pod(namespace, "10.0.1.1", template)
        deny_all = [
            p
            for p in policies_selecting(docs, target)
            if policy_types(p) == {"Ingress", "Egress"} and not p["spec"].get("ingress") and not p["spec"].get("egress")
        ]
        assert deny_all, f"{deployment['metadata']['name']}: no default-deny policy selects its pods"


def test_the_policies_stay_in_the_recovery_pods_own_namespace(docs) -> None:
    for policy in of_kind(docs, "NetworkPolicy").values():
        assert policy["metadata"]["namespace"] == NAMESPACE
        # A policy selecting every pod of the namespace would also cut off a broker or database running there.
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "recovery-engine"


# ---- ingress --------------------------------------------------------------------------------------------------


def test_intakes_public_port_admits_anyone_and_nothing_else_is_open_on_intake(docs) -> None:
    # Everyone but the other recovery services, whose egress has no reason to call intake.
    assert admitted(docs, "intake", SERVICE_PORTS["intake"]) == set(peers(docs)) - set(SERVICES)
    assert admitted(docs, "intake", 9090) == set()


@pytest.mark.parametrize("name", [n for n in SERVICES if n != "intake"])
def test_each_internal_port_admits_only_intake_and_monitoring(docs, name) -> None:
    port = SERVICE_PORTS[name]
    expected = {"monitoring"} | ({"intake"} if name in CALLED_BY_INTAKE else set())
    assert admitted(docs, name, port) == expected
    assert admitted(docs, name, port + 1000) == set(), "no other port"


def test_intake_reaches_the_internal_endpoints_it_forwards_to(docs) -> None:
    config = of_kind(docs, "ConfigMap")["recovery-config"]["data"]
    services = of_kind(docs, "Service")
    intake = recovery_pod(docs, "intake")
    for variable, owner in FORWARDED_TO:
        url = urlsplit(config[variable])
        assert url.hostname == f"recovery-{owner}", f"{variable} names the owner's Service"
        assert url.port == services[f"recovery-{owner}"]["spec"]["ports"][0]["port"] == SERVICE_PORTS[owner]
        assert connection_allowed(docs, intake, recovery_pod(docs, owner), SERVICE_PORTS[owner])


# ---- egress ---------------------------------------------------------------------------------------------------


def test_every_service_reaches_dns_the_broker_the_database_and_the_trace_collector_only_there(docs) -> None:
    kube_dns = pod("kube-system", "10.0.0.10", {"k8s-app": "kube-dns"})
    rabbitmq = pod("messaging", "10.0.4.1", {"app": "rabbitmq"})
    mongo = pod("db", "10.0.5.1", {"app": "mongo"})
    collector = pod("monitoring", "10.0.7.1", {"app": "otel-collector"})
    managed_mongo = external("34.120.1.2")
    for name in SERVICES:
        source = recovery_pod(docs, name)
        assert connection_allowed(docs, source, kube_dns, 53, "UDP"), name
        assert connection_allowed(docs, source, kube_dns, 53, "TCP"), name
        assert not connection_allowed(docs, source, external("8.8.8.8"), 53, "UDP"), f"{name}: DNS is kube-dns"
        assert not connection_allowed(docs, source, pod("default", "10.0.6.1", {"app": "x"}), 53, "UDP"), name
        assert connection_allowed(docs, source, rabbitmq, 5672), name
        assert connection_allowed(docs, source, mongo, 27017), name
        assert connection_allowed(docs, source, managed_mongo, 27017), name
        assert connection_allowed(docs, source, collector, 4318), f"{name}: OTLP/HTTP traces"
        assert not connection_allowed(docs, source, collector, 4317), f"{name}: OTLP/gRPC is not used"
        for port in (15672, 6379, 5432, 22):
            assert not connection_allowed(docs, source, rabbitmq, port), (name, port)


def test_the_topology_job_reaches_dns_and_the_broker_only_and_nothing_reaches_it(docs) -> None:
    template = of_kind(docs, "Job")["recovery-topology"]["spec"]["template"]
    job = pod(NAMESPACE, "10.0.1.40", template["metadata"]["labels"])
    assert connection_allowed(docs, job, pod("kube-system", "10.0.0.10", {"k8s-app": "kube-dns"}), 53, "UDP")
    assert connection_allowed(docs, job, pod("messaging", "10.0.4.1", {"app": "rabbitmq"}), 5672)
    for address in PUBLIC_TARGETS:
        assert not connection_allowed(docs, job, external(address), 443), address
    for name in SERVICES:
        assert not connection_allowed(docs, job, recovery_pod(docs, name), SERVICE_PORTS[name]), name
    for name, peer in peers(docs).items():
        assert not connection_allowed(docs, peer, job, 8080), name


def test_only_intake_the_executor_and_the_dispatcher_reach_the_internet_on_https_only(docs) -> None:
    for name in SERVICES:
        source = recovery_pod(docs, name)
        for address in PUBLIC_TARGETS:
            assert connection_allowed(docs, source, external(address), 443) is (name in EGRESS_TO_INTERNET), (
                name,
                address,
            )
            for port in (80, 8443, 25):
                assert not connection_allowed(docs, source, external(address), port), (name, address, port)


@pytest.mark.parametrize("name", STRIPE_CALLERS)
def test_the_stripe_callers_reach_the_stripe_api_base(docs, name) -> None:
    # Intake re-reads a Stripe Billing invoice when a Stripe `invoice.payment_failed` webhook arrives.
    url = urlsplit(of_kind(docs, "ConfigMap")["recovery-config"]["data"]["STRIPE_API_BASE"])
    assert url.scheme == "https" and url.port is None, "port 443"
    stripe = external(PUBLIC_TARGETS[0])  # a public address standing for api.stripe.com
    assert connection_allowed(docs, recovery_pod(docs, name), stripe, 443), name


@pytest.mark.parametrize("name", sorted(EGRESS_TO_INTERNET))
def test_internet_egress_excludes_the_private_ranges(docs, name) -> None:
    source = recovery_pod(docs, name)
    for address in PRIVATE_TARGETS:
        assert not connection_allowed(docs, source, external(address), 443), (name, address)
    # In-cluster pods (private addresses) are not reachable on 443 either, whatever their namespace.
    for target in ("intake", "scheduler"):
        assert not connection_allowed(docs, source, recovery_pod(docs, target), 443)
    assert not connection_allowed(docs, source, pod("kube-system", "10.0.0.20", {"app": "metrics"}), 443)
    # And the rule says so in so many words.
    policy = of_kind(docs, "NetworkPolicy")[f"recovery-{name}"]
    blocks = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer]
    assert blocks and all(ipaddress.ip_network(b["cidr"]) == ipaddress.ip_network("0.0.0.0/0") for b in blocks)
    for block in blocks:
        assert set(PRIVATE_RANGES) <= set(block["except"])


def test_the_evaluator_is_not_vacuous(docs) -> None:
    """Loosen the manifests and the checks above notice: no except list, an open port, no default deny."""
    executor = recovery_pod(docs, "executor")
    loosened = [dict(doc) for doc in docs]
    policy = next(d for d in loosened if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "recovery-executor")
    policy["spec"] = {**policy["spec"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}
    assert connection_allowed(loosened, executor, external("169.254.169.254"), 443)
    assert connection_allowed(loosened, executor, external("8.8.8.8"), 80)
    without_policies = [doc for doc in docs if doc["kind"] != "NetworkPolicy"]
    assert connection_allowed(without_policies, peers(docs)["other namespace"], executor, SERVICE_PORTS["executor"])
    assert connection_allowed(without_policies, executor, external("10.0.0.5"), 443)
