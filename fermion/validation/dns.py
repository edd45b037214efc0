"""DNS names and domains as Neutron's dns-integration checks them (RFC 1123 labels, 255-character FQDNs), and
the extra DHCP options of a port."""

from __future__ import annotations

import re
from typing import Any

from fermion.validation import InvalidValue

FQDN_MAX_LEN = 255
DOMAIN_DEFAULT = "openstacklocal."
# dns-integration-domain-keywords: these stand in for a label (replaced only when publishing to an external DNS)
KEYWORDS = ("project_id", "project_name", "user_name", "user_id")
_LABEL = re.compile("^([a-z0-9-]{1,63}|" + "|".join(f"<{k}>" for k in KEYWORDS) + ")$")


def lowercase(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"Input value {value} must be string type")
    return value.lower()


def _format_problem(data: str, max_len: int = FQDN_MAX_LEN) -> str | None:
    trimmed = data[:-1] if data.endswith(".") else data
    if len(trimmed) > max_len:
        return f"'{trimmed}' exceeds the {max_len} character FQDN limit"
    labels = trimmed.split(".")
    for label in labels:
        if not label:
            return "Encountered an empty component"
        if label.startswith("-") or label.endswith("-"):
            return f"Name '{label}' must not start or end with a hyphen"
        if not _LABEL.match(label):
            return f"Name '{label}' must be 1-63 characters long, each of which can only be alphanumeric or a hyphen"
    if len(labels) > 1 and labels[-1].isdigit():
        return f"TLD '{labels[-1]}' must not be all numeric"
    return None


def _check_format(data: str) -> None:
    reason = _format_problem(data)
    if reason:
        raise InvalidValue(f"'{data}' not a valid PQDN or FQDN. Reason: {reason}")


def normalized_domain(domain: str) -> str:
    """The configured dns_domain as Neutron compares it: with a trailing dot, or empty."""
    if not domain:
        return ""
    return domain if domain.endswith(".") else domain + "."


def dns_name(value: Any) -> str:
    """A port's dns_name: a PQDN or an FQDN (see in_domain for what the configured domain adds)."""
    data = lowercase(value)
    if data:
        _check_format(data)
    return data


def in_domain(data: str, config_domain: str) -> None:
    """A dns_name fits the configured domain: an FQDN must end with it, a PQDN plus it must fit in an FQDN.
    (Checked only when a domain other than the default is configured: with the default, Neutron accepts the
    name and then ignores it.)"""
    domain = normalized_domain(config_domain)
    if not data or not domain or domain == DOMAIN_DEFAULT:
        return
    higher = f".{domain}"
    if not data.endswith("."):
        if len(data) + len(higher) > FQDN_MAX_LEN:
            raise InvalidValue(
                f"The dns_name passed is a PQDN and its size is '{len(data)}'. The dns_domain option in "
                f"neutron.conf is set to {config_domain}, with a length of '{len(higher)}'. When the two are "
                f"concatenated to form a FQDN (with a '.' at the end), the resulting length exceeds the "
                f"maximum size of '{FQDN_MAX_LEN}'")
        return
    if len(data) <= len(higher) or not data.endswith(higher):
        raise InvalidValue(
            f"The dns_name passed is a FQDN. Its higher level labels must be equal to the dns_domain option "
            f"in neutron.conf, that has been set to '{config_domain}'. It must also include one or more valid "
            f"DNS labels to the left of '{config_domain}'")


def dns_domain(value: Any) -> str:
    """A network's or port's dns_domain: empty, or an FQDN (trailing dot) with room for a name."""
    data = lowercase(value)
    if not data:
        return data
    if not data.endswith("."):
        raise InvalidValue(f"'{data}' is not a FQDN")
    _check_format(data)
    if len(data) > FQDN_MAX_LEN - 2:
        raise InvalidValue(f"'{data}' contains {len(data)} characters. Adding a sub-domain will cause it to exceed "
                           f"the maximum length of a FQDN of '{FQDN_MAX_LEN}'")
    return data


def fip_dns_name(value: Any) -> str:
    """A floating IP's dns_name: a relative name with room for a domain."""
    data = lowercase(value)
    if not data:
        return data
    if data.endswith("."):
        raise InvalidValue(f"'{data}' is a FQDN. It should be a relative domain name")
    _check_format(data)
    if len(data) > FQDN_MAX_LEN - 3:
        raise InvalidValue(f"'{data}' contains {len(data)} characters. Adding a domain name will cause it to exceed "
                           f"the maximum length of a FQDN of '{FQDN_MAX_LEN}'")
    return data


# ---------------------------------------------------------------- extra DHCP options (extra_dhcp_opt)
BLANK_OPTS = ("router", "classless-static-route")  # may be sent empty (to withhold the subnet's value)
OPT_NAME_MAX_LEN = 64
OPT_VALUE_MAX_LEN = 255


def _oneline(value: Any, max_len: int) -> bool:
    return (isinstance(value, str) and bool(value) and len(value) <= max_len
            and "\n" not in value and "\r" not in value)


def _opt(item: Any) -> dict[str, Any]:
    expected = "opt_name, opt_value, ip_version"
    if not isinstance(item, dict) or "opt_name" not in item or "opt_value" not in item:
        raise InvalidValue(f"Invalid input. '{item}' must be a dictionary with keys: {expected}")
    name, value = item["opt_name"], item["opt_value"]
    version = item.get("ip_version", 4)
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise InvalidValue(f"'{version}' is not an integer") from None
    if version not in (4, 6):
        raise InvalidValue(f"Invalid input. '{item}' must be a dictionary with keys: {expected}")
    if name in BLANK_OPTS:
        ok = value is None or (isinstance(value, str) and len(value) <= OPT_VALUE_MAX_LEN)
    else:
        ok = _oneline(name, OPT_NAME_MAX_LEN) and (value is None or _oneline(value, OPT_VALUE_MAX_LEN))
    if not ok:
        raise InvalidValue(f"Invalid input. '{item}' must be a dictionary with keys: {expected}")
    return {"opt_name": name, "opt_value": value, "ip_version": version}


def extra_dhcp_opts(value: Any) -> list[dict[str, Any]] | None:
    """A list of {opt_name, opt_value, ip_version (4 by default)}; null is allowed (no change)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidValue(f"'{value}' is not a list")
    return [_opt(item) for item in value]


def storable(opt: dict[str, Any]) -> bool:
    """Whether an option is kept: a null value removes it, an empty one only for the blank-able options."""
    if opt["opt_name"] in BLANK_OPTS:
        return opt["opt_value"] is not None
    return bool(opt["opt_value"])


def merge_opts(current: list[dict[str, Any]], requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron's update: an option (name and IP version) is replaced, added, or removed by a null value."""
    out = [dict(o) for o in current]
    for req in requested:
        key = (req["opt_name"], req["ip_version"])
        found = next((o for o in out if (o["opt_name"], o["ip_version"]) == key), None)
        if found is None:
            if storable(req):
                out.append(dict(req))
        elif req["opt_value"] is None:
            out.remove(found)
        elif storable(req):
            found["opt_value"] = req["opt_value"]
    return out
