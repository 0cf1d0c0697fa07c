"""A function on a user's Docker network: the check of its name, and the firewall rules that keep it apart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from faasd.core import validation as check
from faasd.core.errors import BadRequest
from faasd.core.settings import Settings
from faasd.engines.firewall import (
    Attachment,
    FirewallError,
    FirewallState,
    HostFirewall,
    bridge_jumps,
    forward_rules,
    input_rules,
)
from faasd.engines.isolation import Isolation

ATTACHMENT = Attachment("faasd-apps", "br-0123456789ab", "172.30.0.5", "02:42:ac:1e:00:05")
CONTAINER = "c0ffee0123456789" + "0" * 48


@pytest.fixture(autouse=True)
def own_networks(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """faasd's own network names, as the engine registers them, kept to each test."""
    names: set[str] = set()
    monkeypatch.setattr(check, "_own_networks", names)
    yield names


# -- the name ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["default", "none", "faasd-apps", "apps", "my_net.2", "A", "x" * 63, "0net"])
def test_a_mode_or_a_docker_network_name_is_taken(value: str) -> None:
    assert check.network(value) == value


@pytest.mark.parametrize("value", ["bad name!", "-apps", ".apps", "_apps", "x" * 64, "a/b", "apps\n", "", "ünï"])
def test_a_name_docker_would_refuse_is_a_400_naming_the_field(value: str) -> None:
    with pytest.raises(BadRequest, match=r"^network"):
        check.network(value)


@pytest.mark.parametrize("value", [None, 3, ["apps"], {"name": "apps"}, True])
def test_a_network_that_is_not_a_string_is_a_400(value: Any) -> None:
    with pytest.raises(BadRequest, match=r"^network"):
        check.network(value)


@pytest.mark.parametrize("value", ["host", "bridge"])
def test_dockers_own_networks_are_refused(value: str) -> None:
    with pytest.raises(BadRequest, match=rf"^network must be one of default, none, got '{value}': Docker's own"):
        check.network(value)


def test_none_is_faasds_sealed_mode_not_dockers_network() -> None:
    assert check.network("none") == "none"


def test_faasds_own_network_is_refused(own_networks: set[str]) -> None:
    assert check.network("faasd-test") == "faasd-test"
    Isolation(Settings(network="faasd-test"))  # the engine names faasd's network at start
    assert own_networks == {"faasd-test"}
    with pytest.raises(BadRequest, match=r"^network must be .*, got 'faasd-test': that is faasd's own network"):
        check.network("faasd-test")
    assert check.network("default") == "default"


# -- the rules ----------------------------------------------------------------------


def test_the_forward_rules_reject_connections_into_the_container_and_link_local_out_of_it() -> None:
    into, link_local = forward_rules(ATTACHMENT, CONTAINER)
    tag = ("-m", "comment", "--comment", "faasd:c0ffee012345")
    assert into == (
        "-o",
        "br-0123456789ab",
        "-d",
        "172.30.0.5",
        "-m",
        "conntrack",
        "--ctdir",
        "ORIGINAL",
        *tag,
        "-j",
        "REJECT",
    )
    assert link_local == (
        "-i",
        "br-0123456789ab",
        "-m",
        "mac",
        "--mac-source",
        "02:42:ac:1e:00:05",
        "-d",
        "169.254.0.0/16",
        *tag,
        "-j",
        "REJECT",
    )


def test_the_input_rule_matches_the_containers_mac_so_either_source_address_is_caught() -> None:
    (rule,) = input_rules(ATTACHMENT, CONTAINER)
    assert rule[:6] == ("-i", "br-0123456789ab", "-m", "mac", "--mac-source", "02:42:ac:1e:00:05")
    assert "-s" not in rule
    assert rule[6:10] == ("-m", "conntrack", "--ctdir", "ORIGINAL")
    assert rule[10:] == ("-m", "comment", "--comment", "faasd:c0ffee012345", "-j", "REJECT")


def test_a_user_bridge_is_jumped_from_both_directions_of_forward_and_from_input() -> None:
    assert bridge_jumps("br-x", "FAASD-OUT-A", "FAASD-NETIN-A") == [
        ("DOCKER-USER", "-i", "br-x", "FAASD-OUT-A"),
        ("DOCKER-USER", "-o", "br-x", "FAASD-OUT-A"),
        ("INPUT", "-i", "br-x", "FAASD-NETIN-A"),
    ]


def test_chain_names_fit_iptables() -> None:
    firewall = HostFirewall("a" * 12)
    for chain in (firewall.in_chain, firewall.out_chain, firewall.netin_chain):
        assert len(chain) <= 28, chain


# -- attach and detach, against a table in memory -------------------------------------


class FakeTables:
    """Just enough of ``iptables -w 10 ...`` for HostFirewall: chains of rules, as lists of words."""

    def __init__(self) -> None:
        self.chains: dict[str, list[list[str]]] = {"INPUT": [], "DOCKER-USER": [["-j", "RETURN"]]}
        self.fail_on: str | None = None
        self.calls: list[str] = []

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        words = list(args)
        self.calls.append(" ".join(words))
        if self.fail_on is not None and self.fail_on in words:
            return self._done(1, "iptables: simulated failure", check)
        op, rest = words[0], words[1:]
        if op == "-S":
            if not rest:
                return self._done(0, "", check, "\n".join(f"-N {c}" for c in self.chains))
            lines = [" ".join(["-A", rest[0], *rule]) for rule in self.chains.get(rest[0], [])]
            return self._done(0, "", check, "\n".join(lines))
        if op == "-n":  # -n -L chain
            return self._done(0 if rest[1] in self.chains else 1, "", check)
        chain, rule = rest[0], rest[1:]
        if op in ("-N", "-F"):
            self.chains[chain] = []
        elif op == "-X":
            self.chains.pop(chain, None)
        elif op == "-A":
            self.chains[chain].append(rule)
        elif op == "-I":
            if rule and rule[0].isdigit():
                self.chains[chain].insert(int(rule[0]) - 1, rule[1:])
            else:
                self.chains[chain].insert(0, rule)
        elif op in ("-C", "-D"):
            if rule not in self.chains.get(chain, []):
                return self._done(1, "iptables: Bad rule (does a matching rule exist in that chain?).", check)
            if op == "-D":
                self.chains[chain].remove(rule)
        return self._done(0, "", check)

    @staticmethod
    def _done(code: int, stderr: str, check: bool, stdout: str = "") -> subprocess.CompletedProcess[str]:
        if check and code != 0:
            raise FirewallError(stderr)
        return subprocess.CompletedProcess([], code, stdout, stderr)

    def mentions(self, text: str) -> list[str]:
        return [f"{chain}: {' '.join(rule)}" for chain, rules in self.chains.items() for rule in rules if text in rule]


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> FakeTables:
    fake = FakeTables()
    monkeypatch.setattr(HostFirewall, "_iptables", lambda self, *args, check=True: fake(*args, check=check))
    monkeypatch.setattr(HostFirewall, "_find_binary", lambda self: "iptables")
    return fake


def test_attach_adds_tagged_rules_and_jumps_and_detach_removes_them(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.setup("br-faasd", live_containers=[])
    before = {chain: list(rules) for chain, rules in tables.chains.items()}
    firewall.attach(CONTAINER, ATTACHMENT)
    tagged = tables.mentions("faasd:c0ffee012345")
    assert len(tagged) == 3, tagged
    assert ["-o", "br-0123456789ab", "-j", firewall.out_chain] in tables.chains["DOCKER-USER"]
    assert ["-i", "br-0123456789ab", "-j", firewall.out_chain] in tables.chains["DOCKER-USER"]
    assert ["-i", "br-0123456789ab", "-j", firewall.netin_chain] in tables.chains["INPUT"]
    assert firewall.intact("br-faasd")
    # A second container on the same bridge: the jumps stay until the last one goes.
    other = "beef" + "1" * 60
    firewall.attach(other, Attachment("faasd-apps", "br-0123456789ab", "172.30.0.6", "02:42:ac:1e:00:06"))
    firewall.detach(CONTAINER)
    assert tables.mentions("faasd:c0ffee012345") == []
    assert ["-i", "br-0123456789ab", "-j", firewall.netin_chain] in tables.chains["INPUT"]
    firewall.detach(other)
    assert tables.chains == before
    firewall.detach(other)  # once more: nothing to do


def test_a_jump_deleted_by_hand_is_noticed_and_put_back_with_the_rules(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.setup("br-faasd", live_containers=[])
    firewall.attach(CONTAINER, ATTACHMENT)
    tables.chains["INPUT"].remove(["-i", "br-0123456789ab", "-j", firewall.netin_chain])
    assert not firewall.intact("br-faasd")
    firewall.setup("br-faasd")  # what Isolation.verify does
    assert firewall.intact("br-faasd")
    assert len(tables.mentions("faasd:c0ffee012345")) == 3


def test_attach_needs_the_firewall(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.state = FirewallState(False, "turned off (--firewall off)")
    with pytest.raises(FirewallError, match="turned off"):
        firewall.attach(CONTAINER, ATTACHMENT)
    assert tables.mentions("faasd:c0ffee012345") == []


def test_a_failed_attach_leaves_nothing_once_the_container_goes(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.setup("br-faasd", live_containers=[])
    tables.fail_on = "mac"
    with pytest.raises(FirewallError):
        firewall.attach(CONTAINER, ATTACHMENT)
    assert len(tables.mentions("faasd:c0ffee012345")) == 1  # the first rule went in
    tables.fail_on = None
    firewall.detach(CONTAINER)  # what stop() does once the container is removed
    assert tables.mentions("faasd:c0ffee012345") == []


def test_jumps_that_failed_with_one_container_are_added_with_the_next(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.setup("br-faasd", live_containers=[])
    tables.fail_on = "1"  # the position of an inserted jump
    with pytest.raises(FirewallError):
        firewall.attach(CONTAINER, ATTACHMENT)
    tables.fail_on = None
    firewall.attach("beef" + "1" * 60, Attachment("faasd-apps", ATTACHMENT.bridge, "172.30.0.6", "02:42:ac:1e:00:06"))
    assert ["-i", "br-0123456789ab", "-j", firewall.netin_chain] in tables.chains["INPUT"]
    assert firewall.intact("br-faasd")


def test_stale_rules_of_gone_containers_are_swept_from_every_faasds_chains(tables: FakeTables) -> None:
    tables.chains["FAASD-NETIN-DEADBEEF0000"] = [
        [
            "-i",
            "br-x",
            "-m",
            "mac",
            "--mac-source",
            "02:42:ac:1e:00:09",
            "-m",
            "comment",
            "--comment",
            "faasd:0123456789ab",
            "-j",
            "REJECT",
        ]
    ]
    tables.chains["FAASD-OUT-DEADBEEF0000"] = [
        ["-o", "br-x", "-d", "172.30.0.9/32", "-m", "comment", "--comment", "faasd:0123456789ab", "-j", "REJECT"],
        ["-o", "br-x", "-d", "172.30.0.8/32", "-m", "comment", "--comment", "faasd:aaaaaaaaaaaa", "-j", "REJECT"],
    ]
    HostFirewall("owner-1").setup("br-faasd", live_containers=["a" * 64])
    assert tables.chains["FAASD-NETIN-DEADBEEF0000"] == []
    assert [r[3] for r in tables.chains["FAASD-OUT-DEADBEEF0000"]] == ["172.30.0.8/32"]


def test_the_containers_are_listed_after_the_rules_are_read(tables: FakeTables) -> None:
    """A container another faasd makes during the sweep has its rules added after it exists: never swept."""
    tables.chains["FAASD-OUT-DEADBEEF0000"] = [
        ["-o", "br-x", "-d", "172.30.0.9/32", "-m", "comment", "--comment", "faasd:0123456789ab", "-j", "REJECT"]
    ]

    def live() -> list[str]:
        tables.calls.append("live")
        return ["0123456789ab" + "0" * 52]

    HostFirewall("owner-1").setup("br-faasd", live_containers=live)
    assert len(tables.chains["FAASD-OUT-DEADBEEF0000"]) == 1
    read = max(i for i, call in enumerate(tables.calls) if call == "-S FAASD-OUT-DEADBEEF0000")
    assert tables.calls.index("live") > read


def test_an_earlier_runs_user_bridge_jumps_are_pruned_at_start(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    tables.chains["INPUT"].append(["-i", "br-old", "-j", firewall.netin_chain])
    tables.chains["DOCKER-USER"].insert(0, ["-o", "br-old", "-j", firewall.out_chain])
    tables.chains["DOCKER-USER"].insert(0, ["-o", "br-old", "-j", "FAASD-OUT-SOMEONEELSE"])
    firewall.setup("br-faasd", live_containers=[])
    assert tables.mentions("br-old") == ["DOCKER-USER: -o br-old -j FAASD-OUT-SOMEONEELSE"]
    assert ["-i", "br-faasd", "-j", firewall.out_chain] in tables.chains["DOCKER-USER"]


def test_teardown_removes_the_user_network_chain_and_its_jumps(tables: FakeTables) -> None:
    firewall = HostFirewall("owner-1")
    firewall.setup("br-faasd", live_containers=[])
    firewall.attach(CONTAINER, ATTACHMENT)
    firewall.teardown()
    assert set(tables.chains) == {"INPUT", "DOCKER-USER"}
    assert tables.chains["INPUT"] == []
    assert tables.chains["DOCKER-USER"] == [["-j", "RETURN"]]


# -- which networks a function may be put on -------------------------------------------


def network(**attrs: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Name": "faasd-apps",
        "Id": "0123456789ab" + "f" * 52,
        "Driver": "bridge",
        "EnableIPv6": False,
        "Options": {},
        "Labels": {},
        "IPAM": {"Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]},
    }
    return {**base, **attrs}


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({}, None),
        ({"Options": {"com.docker.network.bridge.enable_icc": "false"}}, None),
        ({"Name": "bridge"}, "Docker's own"),
        ({"Options": {"com.docker.network.bridge.default_bridge": "true"}}, "Docker's own"),
        ({"Labels": {"faasd.managed": "true"}}, "faasd's own"),
        ({"Driver": "overlay"}, "overlay network, not a bridge"),
        ({"Driver": "macvlan"}, "not a bridge"),
        ({"EnableIPv6": True}, "IPv6"),
        ({"Options": {"com.docker.network.bridge.name": "br-faasd"}}, "faasd's own bridge"),
        ({"IPAM": {"Config": [{"Subnet": "169.254.10.0/24"}]}}, "link-local"),
    ],
)
def test_only_a_users_plain_bridge_is_fit(attrs: dict[str, Any], reason: str | None) -> None:
    isolation = Isolation(Settings(network="faasd-test"))
    isolation.network_id, isolation.bridge = "9" * 64, "br-faasd"
    problem = isolation._unfit(network(**attrs))
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem, problem
    assert isolation._unfit(network(Id="9" * 64)) is not None  # faasd's network, whatever its labels
