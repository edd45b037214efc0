"""Pure validators and converters named by resource definitions.

Each takes the raw JSON value and returns the converted value or raises InvalidValue with a short reason;
the API layer wraps the reason as Neutron does ("Invalid input for X. Reason: ...").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import netaddr


class InvalidValue(ValueError):
    pass


Validator = Callable[[Any], Any]

_MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return bool(value)
    elif isinstance(value, str):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
    raise InvalidValue(f"'{value}' cannot be converted to boolean")


def string(max_len: int | None = 255, nullable: bool = False) -> Validator:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise InvalidValue(f"'{value}' is not a valid string")
        if max_len is not None and len(value) > max_len:
            raise InvalidValue(f"'{value[:40]}...' exceeds maximum length of {max_len}")
        return value

    return check


def uuid_str(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"'{value}' is not a valid UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidValue(f"'{value}' is not a valid UUID") from None


def nullable_uuid(value: Any) -> str | None:
    return None if value is None else uuid_str(value)


def integer(minimum: int | None = None, maximum: int | None = None) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise InvalidValue(f"'{value}' is not an integer")
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise InvalidValue(f"'{value}' is not an integer") from None
        if not isinstance(value, int):
            raise InvalidValue(f"'{value}' is not an integer")
        if not -(2**63) <= value < 2**63:  # no database column holds it
            raise InvalidValue(f"'{value}' is out of range")
        if minimum is not None and value < minimum:
            raise InvalidValue(f"'{value}' is too small - must be at least '{minimum}'")
        if maximum is not None and value > maximum:
            raise InvalidValue(f"'{value}' is too large - must be no larger than '{maximum}'")
        return value

    return check


def one_of(*choices: Any, nullable: bool = False) -> Validator:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if value not in choices:
            raise InvalidValue(f"'{value}' is not in {list(choices)}")
        return value

    return check


def ip_address(value: Any) -> str:
    if not isinstance(value, str) or not value or " " in value:
        raise InvalidValue(f"'{value}' is not a valid IP address")
    try:
        if ":" in value:
            addr = netaddr.IPAddress(value, 6)
        else:
            # inet_pton semantics: reject '10.1' or '010.0.0.1' style shorthands
            addr = netaddr.IPAddress(value, 4, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidValue(f"'{value}' is not a valid IP address") from None
    return str(addr)


def nullable_ip(value: Any) -> str | None:
    return None if value is None else ip_address(value)


def cidr(value: Any) -> str:
    if not isinstance(value, str) or "/" not in value:
        raise InvalidValue(f"'{value}' is not a valid IP subnet")
    addr, _, plen = value.partition("/")
    ip_address(addr)
    try:
        net = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidValue(f"'{value}' is not a valid IP subnet") from None
    if not plen.isdigit():
        raise InvalidValue(f"'{value}' is not a valid IP subnet")
    return str(net)


def normalized_cidr(value: Any) -> str:
    """A CIDR with host bits cleared (10.0.0.5/24 -> 10.0.0.0/24), as Neutron stores rules and subnets."""
    return str(netaddr.IPNetwork(cidr(value)).cidr)


def mac_address(value: Any) -> str:
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise InvalidValue(f"'{value}' is not a valid MAC address")
    mac = netaddr.EUI(value)
    if mac.value == 0 or (mac.words[0] & 1):
        raise InvalidValue(f"'{value}' is not a valid MAC address")
    return str(mac).replace("-", ":").lower()


def list_of(item: Validator, max_items: int = 1000, unique: bool = False) -> Validator:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise InvalidValue(f"'{value}' is not a list")
        if len(value) > max_items:
            raise InvalidValue(f"list exceeds maximum of {max_items} items")
        out = [item(v) for v in value]
        if unique:
            seen: set[Any] = set()
            for v in out:
                key = repr(v)
                if key in seen:
                    raise InvalidValue(f"Duplicate items in the list: '{v}'")
                seen.add(key)
        return out

    return check


def dict_of(fields: dict[str, tuple[Validator, bool]], name: str = "dict") -> Validator:
    """A dict with known keys; fields maps key -> (validator, required)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidValue(f"'{value}' is not a dictionary")
        unknown = set(value) - set(fields)
        if unknown:
            raise InvalidValue(f"Unrecognized keys in {name}: {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for key, (validator, required) in fields.items():
            if key in value:
                out[key] = validator(value[key])
            elif required:
                raise InvalidValue(f"{name} is missing '{key}'")
        return out

    return check


def any_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue(f"'{value}' is not a dictionary")
    return value


def tag_value(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 60 or "," in value or "/" in value:
        raise InvalidValue(f"'{value}' is not a valid tag")
    return value


def nullable(inner: Validator) -> Validator:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def nested_dict(value: Any, spec: dict[str, Any]) -> None:
    """Check a dict against a spec of allowed keys (all optional), as neutron-lib's type:dict with key specs:
    a spec value is a validator for a leaf or a dict spec for a sub-dict."""
    if not isinstance(value, dict):
        raise InvalidValue(f"'{value}' is not a dictionary")
    unexpected = [key for key in value if key not in spec]
    if unexpected:
        raise InvalidValue(f"Unexpected keys supplied: {', '.join(str(k) for k in unexpected)}")
    for key, sub in spec.items():
        if key in value:
            if isinstance(sub, dict):
                nested_dict(value[key], sub)
            else:
                sub(value[key])
