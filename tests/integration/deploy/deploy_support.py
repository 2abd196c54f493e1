"""Offline helpers for the deploy validation tests: a minimal kustomize renderer, a Dockerfile reader, a
.dockerignore matcher, Compose variable interpolation. No Docker engine, kubectl or kustomize binary needed.

The renderer implements exactly the kustomization features deploy/k8s uses (resources, components, namespace,
images, patches with a single strategic-merge/merge patch per file) and fails on anything else, so that a
manifest change it cannot render is noticed rather than silently mis-rendered.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher", "analytics")
CONSUMERS_SCALED_ON_QUEUES = ("scheduler", "executor", "webhook-dispatcher", "analytics")
SERVICE_PORTS = {"intake": 8080, "scheduler": 8081, "executor": 8082, "webhook-dispatcher": 8083, "analytics": 8084}
# Intake's settings naming the internal endpoints it forwards to, and their owners.
FORWARDED_TO = (
    ("DISPATCHER_INTERNAL_URL", "webhook-dispatcher"),
    ("SCHEDULER_INTERNAL_URL", "scheduler"),
    ("ANALYTICS_INTERNAL_URL", "analytics"),
    ("EXECUTOR_INTERNAL_URL", "executor"),
)
# Queue-name prefix of each service in recovery_runtime.topology.
QUEUE_PREFIX = {
    "intake": "intake",
    "scheduler": "scheduler",
    "executor": "executor",
    "webhook-dispatcher": "dispatcher",
    "analytics": "analytics",
}

Doc = dict[str, Any]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def load_yaml_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# ---- kustomize ------------------------------------------------------------------------------------------------

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "components", "namespace", "images", "patches"}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ClusterTriggerAuthentication",
}
# Kinds whose patches kustomize applies as strategic merge (lists merged by key); others get a JSON merge patch.
BUILT_IN_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1", "networking.k8s.io/v1"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(Exception):
    pass


def _read_kustomization(directory: Path) -> Doc:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"no kustomization.yaml in {directory}")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - KUSTOMIZATION_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return data


def _resource_id(doc: Doc) -> tuple[str, str, str]:
    return (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])


def _merge(base: Any, patch: Any, strategic: bool, list_key: str | None = None) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = _merge(merged[key], value, strategic, MERGE_KEYS.get(key) if strategic else None)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if strategic and list_key and isinstance(base, list) and isinstance(patch, list):
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next(
                (
                    i
                    for i, old in enumerate(merged_list)
                    if isinstance(old, dict) and old.get(list_key) == item.get(list_key)
                ),
                None,
            )
            if index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = _merge(merged_list[index], item, strategic)
        return merged_list
    return copy.deepcopy(patch)


def _apply_patches(resources: list[Doc], directory: Path, patches: list[Doc]) -> None:
    for entry in patches:
        if set(entry) != {"path"}:
            raise KustomizeError(f"{directory}: only `patches: - path: FILE` is implemented, got {entry}")
        patch_docs = load_yaml_docs(directory / entry["path"])
        if len(patch_docs) != 1:
            raise KustomizeError(f"{directory / entry['path']}: one patch per file")
        patch = patch_docs[0]
        matches = [i for i, doc in enumerate(resources) if _resource_id(doc) == _resource_id(patch)]
        if len(matches) != 1:
            raise KustomizeError(f"{entry['path']}: patch target {_resource_id(patch)} matched {len(matches)}")
        index = matches[0]
        resources[index] = _merge(resources[index], patch, strategic=patch["apiVersion"] in BUILT_IN_GROUPS)


def _apply_images(resources: list[Doc], images: list[Doc]) -> None:
    for doc in resources:
        if doc["kind"] not in POD_TEMPLATE_KINDS:
            continue
        pod_spec = doc["spec"]["template"]["spec"]
        for container in [*pod_spec.get("containers", []), *pod_spec.get("initContainers", [])]:
            name = re.split(r"[:@]", container["image"], maxsplit=1)[0]
            for image in images:
                if image["name"] == name:
                    new_name = image.get("newName", name)
                    tag = image.get("newTag")
                    container["image"] = (
                        f"{new_name}@{image['digest']}"
                        if "digest" in image
                        else (f"{new_name}:{tag}" if tag else new_name)
                    )


def _apply_namespace(resources: list[Doc], namespace: str) -> None:
    for doc in resources:
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            doc["metadata"]["namespace"] = namespace


def render(
    directory: Path,
    *,
    extra_components: tuple[Path, ...] = (),
    skip_patches: tuple[str, ...] = (),
    is_component: bool = False,
    into: list[Doc] | None = None,
) -> list[Doc]:
    """Render a kustomization (or apply a component onto `into`) the way `kustomize build` would."""
    data = _read_kustomization(directory)
    expected_kind = "Component" if is_component else "Kustomization"
    if data.get("kind", "Kustomization") != expected_kind:
        raise KustomizeError(f"{directory}: kind {data.get('kind')}, expected {expected_kind}")
    resources: list[Doc] = into if into is not None else []
    for entry in data.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(render(target))
        else:
            resources.extend(load_yaml_docs(target))
    for entry in [*data.get("components", []), *extra_components]:
        render((directory / entry).resolve(), is_component=True, into=resources)
    patches = [p for p in data.get("patches", []) if p.get("path") not in skip_patches]
    _apply_patches(resources, directory, patches)
    if "namespace" in data:
        _apply_namespace(resources, data["namespace"])
    _apply_images(resources, data.get("images", []))
    ids = [(*_resource_id(doc), doc["metadata"].get("namespace", "")) for doc in resources]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise KustomizeError(f"{directory}: duplicate resources {sorted(duplicates)}")
    return resources


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


# ---- Dockerfile -----------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def text(self) -> str:
        return "\n".join(f"{i.keyword} {i.arguments}" for i in self.instructions)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def resolve(self, value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: self.global_args.get(m.group(1), m.group(0)), value)


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif not stages and keyword == "ARG":
            key, _, value = arguments.partition("=")
            global_args[key] = value
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return Dockerfile(global_args, stages)


def uv_export_commands(stage: Stage) -> list[list[str]]:
    """The `uv export ...` command lines of a stage's RUN instructions, as argument lists."""
    commands = []
    for run in stage.all("RUN"):
        text = re.sub(r"--mount=\S+", "", run.arguments)
        for segment in re.split(r"&&|\|", text):
            words = shlex.split(segment)
            if words[:2] == ["uv", "export"]:
                commands.append(words)
    return commands


# ---- .dockerignore --------------------------------------------------------------------------------------------


def dockerignore_excludes(patterns_file: Path, relative_path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any of its parents."""
    patterns = [
        line.strip()
        for line in patterns_file.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = relative_path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if any(_match(body, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def _match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        segments = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(segments[i:]), rest) for i in range(len(segments)))
    return fnmatch.fnmatchcase(path, pattern) and pattern.count("/") == path.count("/")


# ---- Compose --------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: Any, environment: dict[str, str] | None = None) -> Any:
    """Compose's variable interpolation with an (by default empty) environment: ${VAR:-default} and friends."""
    env = environment or {}
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"required variable {name}: {arg}")
            return current
        if op in (":+", "+"):
            return arg if current else ""
        return current or ""

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def duration_seconds(value: str) -> float:
    """A Compose duration ("1m30s", "25s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    total = 0.0
    matches = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not matches or "".join(n + u for n, u in matches) != value:
        raise ValueError(f"not a duration: {value!r}")
    for number, unit in matches:
        total += float(number) * units[unit]
    return total


def merge_compose(base: Any, override: Any, path: str = "") -> Any:
    """`docker compose -f base -f override`: mappings merge key by key (environment included), scalars are
    replaced. Sequences merge by rules per key in Compose (ports append, command replaces, ...); none is
    implemented, so an override carrying one fails here instead of being merged wrongly."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_compose(base[key], value, f"{path}.{key}") if key in base else copy.deepcopy(value)
        return merged
    if isinstance(override, list):
        raise ValueError(f"{path}: merging sequences is not implemented by this helper")
    return copy.deepcopy(override)


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str | None
    host_port: str
    container_port: str


def published_ports(service: Doc) -> list[PublishedPort]:
    """A service's `ports` in the short syntax ([HOST_IP:]HOST_PORT:CONTAINER_PORT or CONTAINER_PORT)."""
    result = []
    for entry in service.get("ports", []):
        if not isinstance(entry, str):
            raise ValueError(f"only the short port syntax is implemented: {entry!r}")
        parts = entry.rsplit(":", 2)
        if len(parts) == 3:
            result.append(PublishedPort(parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            result.append(PublishedPort(None, parts[0], parts[1]))
        else:  # container port only: published on an ephemeral port of every interface
            result.append(PublishedPort(None, "", parts[0]))
    return result


# ---- NetworkPolicy (networking.k8s.io/v1) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace, its labels, its named ports) or an address outside the cluster
    (namespace None). Pods have an address too, so that ipBlock rules apply to them as they would."""

    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    named_ports: dict[str, int] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def pod(namespace: str, ip: str, labels: dict[str, str], named_ports: dict[str, int] | None = None) -> Endpoint:
    # Kubernetes labels every namespace with its name (kubernetes.io/metadata.name, since 1.21).
    return Endpoint(ip, namespace, labels, {"kubernetes.io/metadata.name": namespace}, named_ports or {})


def external(ip: str) -> Endpoint:
    return Endpoint(ip)


def selector_matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist); {} matches all."""
    selector = selector or {}
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"unknown selector fields {sorted(unknown)}")
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def policy_types(policy: Doc) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress", *(["Egress"] if "egress" in spec else [])}


def policies_selecting(docs: list[Doc], target: Endpoint) -> list[Doc]:
    return [
        policy
        for policy in of_kind(docs, "NetworkPolicy").values()
        if target.is_pod
        and policy["metadata"].get("namespace", "") == target.namespace
        and selector_matches(policy["spec"]["podSelector"], target.labels)
    ]


def _peer_matches(peer: Doc, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[Doc] | None, port: int, protocol: str, destination: Endpoint) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        wanted = entry["port"]
        if isinstance(wanted, str):
            wanted = destination.named_ports.get(wanted)
            if wanted is None:
                continue
        if wanted <= port <= entry.get("endPort", wanted):
            return True
    return False


def _direction_allows(docs: list[Doc], subject: Endpoint, other: Endpoint, port: int, protocol: str, kind: str) -> bool:
    """Whether `subject`'s policies of one direction admit the connection (to `other` for Egress, from it for
    Ingress). A pod no policy of that direction selects is not isolated in that direction."""
    selecting = [p for p in policies_selecting(docs, subject) if kind in policy_types(p)]
    if not subject.is_pod or not selecting:
        return True
    destination = other if kind == "Egress" else subject
    rules_key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    for policy in selecting:
        namespace = policy["metadata"].get("namespace", "")
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, namespace, other) for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol, destination):
                return True
    return False


def connection_allowed(
    docs: list[Doc], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """NetworkPolicy semantics: the source's egress policies and the destination's ingress policies must both
    admit the connection (policies add up; a pod selected by none for a direction is open in it)."""
    return _direction_allows(docs, source, destination, port, protocol, "Egress") and _direction_allows(
        docs, destination, source, port, protocol, "Ingress"
    )


# The RabbitMQ series (rabbitmq_prometheus, per-object metrics) the dashboard and the alerts may use.
RABBITMQ_SERIES = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
}


def series_not_defined(names: set[str]) -> list[str]:
    """Of `names` (recovery_* and rabbitmq_* series a query uses), those no code of the workspace defines (a
    histogram's _bucket, _sum and _count come with it; a Counter is declared with or without _total) and those
    RabbitMQ's plugin does not export."""
    sources = "\n".join(
        path.read_text()
        for root in ("libs", "services")
        for path in (REPO / root).rglob("*.py")
        if ".venv" not in path.parts
    )
    missing = []
    for name in sorted(names):
        if name.startswith("rabbitmq_"):
            if name not in RABBITMQ_SERIES:
                missing.append(name)
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if not any(f'"{c}"' in sources for c in {base, base.removesuffix("_total")}):
            missing.append(name)
    return missing
