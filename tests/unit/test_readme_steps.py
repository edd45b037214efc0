"""How the README's console blocks become steps, and how shown output is compared with real output."""

from __future__ import annotations

from pathlib import Path

from tests.support.readme import normalize, readme_steps, same_shape, steps

TEXT = """
Intro.

```console
$ export A=1
$ openstack floating ip create public --port x \\
      -c floating_ip_address    # a comment
| floating_ip_address | 198.19.0.42 |
$ fermion lab ping vmb vm1 -c 1   # not reachable
1 packets transmitted, 0 received, 100% packet loss, time 0ms
```

```yaml
$ not a step
```

```console
$ echo '# not a comment'  # but this is
```
"""


def test_commands_with_continuations_comments_and_shown_output() -> None:
    found = steps(TEXT)
    assert [s.command for s in found] == [
        "export A=1",
        "openstack floating ip create public --port x \\\n      -c floating_ip_address",
        "fermion lab ping vmb vm1 -c 1",
        "echo '# not a comment'",
    ]
    assert found[1].shown == ["| floating_ip_address | 198.19.0.42 |"]
    assert [s.expect_failure for s in found] == [False, False, True, False]
    assert found[0].line == 5


def test_values_are_compared_by_kind_and_dots_stand_for_anything() -> None:
    assert normalize("64 bytes from 10.2.0.58: icmp_seq=1 ttl=63 time=0.150 ms") == \
        "<n> bytes from <ip>: icmp_seq=<n> ttl=<n> time=<n> ms"
    shown = ["vm1: host compute1, port 1212fbfd-..., mac fa:16:3e:3b:f8:a5, ip 10.1.0.223 (DHCP)",
             "lab down: removed 7 namespaces"]
    actual = ("noise\nvm1: host compute1, port 3f2a6c1e-1b2c-4d3e-8f90-0123456789ab, mac fa:16:3e:00:00:01, "
              "ip 10.1.0.5 (DHCP)\nlab down: removed 13 namespaces\n")
    assert same_shape(shown, actual) == []
    assert same_shape(["vm1: host compute2, port ..."], actual) == ["vm1: host compute2, port ..."]
    assert same_shape(["| status              | ACTIVE      |"], "| status | DOWN |") == \
        ["| status              | ACTIVE      |"]
    assert same_shape(shown[::-1], actual) == [shown[0]], "in order"
    assert same_shape(["fermion_port_active_latency_seconds_sum 1.8"],
                      "fermion_port_active_latency_seconds_sum 2.0451484790000904") == []


def test_the_readme_has_walkthrough_steps() -> None:
    found = readme_steps(Path(__file__).resolve().parents[2] / "README.md")
    assert len(found) > 20
    assert any(s.command.startswith("fermion lab up") for s in found)
