"""A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1).

Model: pods with a namespace, labels, container ports and no IP (ipBlock peers match only
`External` endpoints, which have an IP). A connection src -> dst:port/proto is allowed iff
  - no policy in dst's namespace selects dst for Ingress, or one of their ingress rules
    admits src on that port; and
  - no policy in src's namespace selects src for Egress, or one of their egress rules admits
    dst on that port.
Policies are additive; an empty `from`/`to` admits every peer, an empty `ports` every port.
Named ports resolve against the destination pod's container ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass
class Endpoint:
    """A pod (labels, namespace) or an external address (ip)."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[Port] = ()
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        return self.ip is None


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}


def _policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def _selects(policy: Mapping[str, Any], ep: Endpoint) -> bool:
    return (
        ep.is_pod
        and policy["metadata"]["namespace"] == ep.namespace
        and selector_matches(policy["spec"].get("podSelector") or {}, ep.labels)
    )


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        if ep.is_pod:
            return False
        addr = ipaddress.ip_address(ep.ip)  # type: ignore[arg-type]
        block = peer["ipBlock"]
        if addr not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(addr in ipaddress.ip_network(x) for x in block.get("except") or [])
    if not ep.is_pod:
        return False
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    if ns_sel is None:
        ns_ok = ep.namespace == policy_ns
    else:
        ns_ok = selector_matches(ns_sel, namespace_labels(ep.namespace or ""))
    return ns_ok and selector_matches(pod_sel or {}, ep.labels)


def _port_matches(
    rule_ports: Sequence[Mapping[str, Any]] | None, dst: Endpoint, port: Port
) -> bool:
    if not rule_ports:
        return True
    for rp in rule_ports:
        if rp.get("protocol", "TCP") != port.protocol:
            continue
        p = rp.get("port")
        if p is None:
            return True
        if isinstance(p, str):
            if port.name == p:
                return True
            continue
        end = rp.get("endPort", p)
        if p <= port.number <= end:
            return True
    return False


def _rules_admit(
    rules: Iterable[Mapping[str, Any]],
    peer_key: str,
    policy_ns: str,
    peer: Endpoint,
    dst: Endpoint,
    port: Port,
) -> bool:
    for rule in rules:
        peers = rule.get(peer_key)
        if peers and not any(_peer_matches(p, policy_ns, peer) for p in peers):
            continue
        if _port_matches(rule.get("ports"), dst, port):
            return True
    return False


def allowed(
    policies: Sequence[Mapping[str, Any]], src: Endpoint, dst: Endpoint, port: Port
) -> bool:
    ingress = [p for p in policies if "Ingress" in _policy_types(p) and _selects(p, dst)]
    if ingress and not any(
        _rules_admit(
            p["spec"].get("ingress") or [], "from", p["metadata"]["namespace"], src, dst, port
        )
        for p in ingress
    ):
        return False
    egress = [p for p in policies if "Egress" in _policy_types(p) and _selects(p, src)]
    return not egress or any(
        _rules_admit(
            p["spec"].get("egress") or [], "to", p["metadata"]["namespace"], dst, dst, port
        )
        for p in egress
    )


def reachability(
    policies: Sequence[Mapping[str, Any]], endpoints: Sequence[Endpoint], in_scope: set[str]
) -> set[tuple[str, str, int, str]]:
    """All allowed (src, dst, port, protocol) where src or dst is in `in_scope`."""
    out = set()
    for src in endpoints:
        if not src.is_pod:
            continue  # external clients are not modelled
        for dst in endpoints:
            if src is dst or (src.name not in in_scope and dst.name not in in_scope):
                continue
            for port in dst.ports:
                if allowed(policies, src, dst, port):
                    out.add((src.name, dst.name, port.number, port.protocol))
    return out
