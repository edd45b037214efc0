"""Quality of Service (qos, qos-bw-limit-direction, qos-default, qos-rule-type-details, qos-fip, qos-gateway-ip).

/v2.0/qos/policies is a standard resource; its rules are sub-resources of a policy (no standard attributes:
id and their parameters only), /v2.0/qos/rule-types lists what this backend enforces. The policy a port,
network or floating IP uses is their ``qos_policy_id`` (QOS_POLICY_ID below); a router gateway's is
``external_gateway_info.qos_policy_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fermion import validation as v
from fermion.resources.base import BOOL, Attribute, Extension, Resource, standard_attributes

EGRESS, INGRESS = "egress", "ingress"
DSCP_MARKS = (0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 44, 46, 48, 56)
INT_MAX = 2**31 - 1  # Neutron's DB_INTEGER_MAX_VALUE

QOS_POLICY = Resource(
    member="policy",
    collection="policies",
    not_found="QosPolicyNotFound",
    id_label="QoS policy",
    url="qos/policies",
    attributes=standard_attributes() + (
        Attribute("shared", v.boolean, default=False, post=True, put=True, schema=BOOL),
        Attribute("is_default", v.boolean, default=False, post=True, put=True, extension="qos-default",
                  schema=BOOL),
        Attribute("rules", filter=False, schema={"type": "array", "items": {"type": "object"}}),
    ),
)


def _kbps(value: Any) -> int:
    return int(v.integer(0, INT_MAX)(value))


def _dscp(value: Any) -> int:
    mark = v.integer()(value)
    if mark not in DSCP_MARKS:
        raise v.InvalidValue(f"{value} is not in valid_values")
    return int(mark)


_ID = Attribute("id", v.uuid_str, sort=True, schema={"type": "string", "format": "uuid"})
_INT = {"type": "integer"}


@dataclass(frozen=True)
class RuleType:
    """A rule type: its name (the `type` of a rule in a policy), its resource and what the L2 agent does."""

    name: str
    resource: Resource
    enforced: bool  # False: accepted and reported, not enforced (minimum_bandwidth needs placement)

    @property
    def collection(self) -> str:
        return self.resource.collection

    @property
    def member(self) -> str:
        return self.resource.member


def _rule(name: str, not_found: str, *attrs: Attribute) -> Resource:
    return Resource(member=f"{name}_rule", collection=f"{name}_rules", not_found=not_found, id_label="QoS rule",
                    tags=False, standard=False, attributes=(_ID, *attrs))


BANDWIDTH_LIMIT = RuleType("bandwidth_limit", _rule(
    "bandwidth_limit", "QosRuleNotFound",
    Attribute("max_kbps", _kbps, post=True, put=True, sort=True, schema=_INT, filter_convert=v.integer()),
    Attribute("max_burst_kbps", _kbps, default=0, post=True, put=True, sort=True, schema=_INT,
              filter_convert=v.integer()),
    Attribute("direction", v.one_of(EGRESS, INGRESS), default=EGRESS, post=True, put=True, sort=True,
              extension="qos-bw-limit-direction")), True)
DSCP_MARKING = RuleType("dscp_marking", _rule(
    "dscp_marking", "QosRuleNotFound",
    Attribute("dscp_mark", _dscp, post=True, put=True, sort=True, schema=_INT, filter_convert=v.integer())), True)
MINIMUM_BANDWIDTH = RuleType("minimum_bandwidth", _rule(
    "minimum_bandwidth", "QosRuleNotFound",
    Attribute("min_kbps", _kbps, post=True, put=True, sort=True, schema=_INT, filter_convert=v.integer()),
    # ingress only with qos-bw-minimum-ingress, which is not advertised
    Attribute("direction", v.one_of(EGRESS), default=EGRESS, post=True, put=True, sort=True)), False)
RULE_TYPES: dict[str, RuleType] = {t.name: t for t in (BANDWIDTH_LIMIT, DSCP_MARKING, MINIMUM_BANDWIDTH)}
RULES_BY_COLLECTION: dict[str, RuleType] = {t.collection: t for t in RULE_TYPES.values()}
# Neutron's other rule types: a clear 400 rather than an unknown path
UNSUPPORTED = {"packet_rate_limit_rules": "packet_rate_limit", "minimum_packet_rate_rules": "minimum_packet_rate"}

# the qos_policy_id of ports and networks (qos) and floating IPs (qos-fip)
QOS_POLICY_ID = Attribute("qos_policy_id", v.nullable_uuid, default=None, post=True, put=True, extension="qos",
                          schema={"type": ["string", "null"], "format": "uuid"})
FIP_QOS_POLICY_ID = Attribute("qos_policy_id", v.nullable_uuid, default=None, post=True, put=True,
                              extension="qos-fip", schema={"type": ["string", "null"], "format": "uuid"})

EXTENSIONS = (
    Extension("qos", "Quality of Service", "The Quality of Service extension.", "2015-06-08T10:00:00-00:00"),
    Extension("qos-bw-limit-direction", "Direction for QoS bandwidth limit rule",
              "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress",
              "2017-04-10T10:00:00-00:00"),
    Extension("qos-default", "QoS default policy", "Expose the QoS default policy per project",
              "2017-041-06T10:00:00-00:00"),
    Extension("qos-rule-type-details", "Details of QoS rule types",
              "Expose details about QoS rule types supported by loaded backend drivers",
              "2017-06-22T10:00:00-00:00"),
    Extension("qos-fip", "Floating IP QoS", "The floating IP Quality of Service extension",
              "2017-07-20T00:00:00-00:00"),
    Extension("qos-gateway-ip", "Router gateway IP QoS", "The Router gateway IP Quality of Service extension",
              "2018-02-24T00:00:00-00:00"),
)
