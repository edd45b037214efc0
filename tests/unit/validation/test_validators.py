import pytest

from fermion import validation as v


@pytest.mark.parametrize("good,out", [("10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1")])
def test_ip_address_accepts_and_normalizes(good: str, out: str) -> None:
    assert v.ip_address(good) == out


@pytest.mark.parametrize("bad", ["10.0.0", "10.0.0.256", "010.0.0.1", "1::2::3", "", " 10.0.0.1", 5, None])
def test_ip_address_rejects(bad: object) -> None:
    with pytest.raises(v.InvalidValue):
        v.ip_address(bad)


@pytest.mark.parametrize("bad", ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/x", "2001:db8::/129", "abc/24"])
def test_cidr_rejects(bad: str) -> None:
    with pytest.raises(v.InvalidValue):
        v.cidr(bad)


def test_cidr_normalization() -> None:
    assert v.normalized_cidr("10.0.0.5/24") == "10.0.0.0/24"


@pytest.mark.parametrize("bad", ["00:00:00:00:00:00", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "fa:16:3e:00:00"])
def test_mac_rejects_zero_multicast_and_malformed(bad: str) -> None:
    with pytest.raises(v.InvalidValue):
        v.mac_address(bad)


def test_mac_normalizes_case_and_separator() -> None:
    assert v.mac_address("FA-16-3E-AA-BB-CC") == "fa:16:3e:aa:bb:cc"


@pytest.mark.parametrize("value,out", [(True, True), ("false", False), ("1", True), (0, False)])
def test_boolean(value: object, out: bool) -> None:
    assert v.boolean(value) is out


@pytest.mark.parametrize("bad", ["maybe", 2, None, [], 1.0])
def test_boolean_rejects(bad: object) -> None:
    with pytest.raises(v.InvalidValue):
        v.boolean(bad)


def test_uuid() -> None:
    assert v.uuid_str("6F9619FF-8B86-D011-B42D-00C04FC964FF") == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    with pytest.raises(v.InvalidValue):
        v.uuid_str("not-a-uuid")


def test_string_length_and_type() -> None:
    assert v.string(3)("abc") == "abc"
    with pytest.raises(v.InvalidValue):
        v.string(3)("abcd")
    with pytest.raises(v.InvalidValue):
        v.string(3)(5)


def test_list_unique_and_dict_keys() -> None:
    with pytest.raises(v.InvalidValue):
        v.list_of(v.ip_address, unique=True)(["10.0.0.1", "10.0.0.1"])
    pool = v.dict_of({"start": (v.ip_address, True)})
    with pytest.raises(v.InvalidValue):
        pool({"start": "10.0.0.1", "stop": "x"})
    with pytest.raises(v.InvalidValue):
        pool({})
