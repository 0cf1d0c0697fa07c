"""What keeps function containers apart: faasd's network and the host firewall around it.

- The network (``--network``, default ``faasd``) is a bridge made with
  inter-container traffic disabled and without IPv6. One that lacks either
  (an older faasd's, or one made by hand) is made anew when nothing is
  attached, else faasd refuses to use it and says how to fix it.
- The host firewall (engines/firewall.py) closes the host to the bridge and
  seals off ``network: none`` containers.
- A function on a user's Docker network (:meth:`Isolation.join`) is put on that
  bridge too, with rules that keep every connection into it over that network,
  and to the host through it, out.
- Both are checked again now and then (:meth:`Isolation.verify`): a network
  replaced under faasd, or a firewall reload that flushed its jumps, is
  noticed and repaired instead of reported as in place.
- Without the firewall, :meth:`Isolation.refuses` tells the data plane which
  peers (the bridge's subnets) to close unanswered.

Every method here blocks on the engine or iptables: call them off the loop.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from faasd.core import validation
from faasd.core.entities import DOCKER_NETWORKS
from faasd.core.errors import EngineUnavailable
from faasd.core.settings import Settings
from faasd.engines.firewall import LINK_LOCAL, Attachment, FirewallError, FirewallState, HostFirewall

log = logging.getLogger(__name__)

ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
# Docker's drop rule for inter-container traffic applies only when bridged
# packets go through iptables (br_netfilter); rootless engines may lack it.
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Isolation:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.network
        validation.own_network(self.name)  # no function may name it (a 400 at create and update)
        self._mode = settings.firewall
        self.firewall = HostFirewall(settings.owner)
        if self._mode == "off":
            self.firewall.state = FirewallState(False, "turned off (--firewall off)")
        self._lock = threading.Lock()
        self.ready = False
        self.network_id = ""
        self.bridge = ""
        self._subnets: tuple[Network, ...] = ()
        self._sealed: dict[str, str] = {}  # container id -> its address, cut off
        self._bridge_filtering: bool | None = None

    # -- set-up -----------------------------------------------------------------

    def ensure(self, client: docker.DockerClient, before_firewall: Callable[[], None] | None = None) -> None:
        """The network and the firewall in place (once, and again after :meth:`verify` found them gone).

        ``before_firewall`` runs first (the backend removes an earlier faasd's
        containers there, so the firewall is never rebuilt under them).
        """
        if self.ready:
            return
        with self._lock:
            if self.ready:
                return
            attrs = self._ensure_network(client)
            self._adopt(attrs)
            if before_firewall is not None:
                before_firewall()
            self._bridge_filtering = _bridge_filtering()
            if self._bridge_filtering is False:
                log.warning(
                    "bridged traffic bypasses iptables here (%s is 0): Docker cannot keep containers on %s "
                    "apart; load br_netfilter and set it to 1 (SECURITY.md)",
                    BRIDGE_NF,
                    self.name,
                )
            if self._mode != "off":
                self._setup_firewall(client)
            self.ready = True

    def _setup_firewall(self, client: docker.DockerClient) -> None:
        def live() -> list[str]:
            return [str(c["Id"]) for c in client.api.containers(all=True, quiet=True)]

        try:
            self.firewall.setup(self.bridge, live)
        except FirewallError as exc:
            if self._mode == "on":
                raise
            log.warning(
                "host firewall unavailable (%s): function containers can reach services that listen "
                "on this host's addresses (faasd's own listener closes their connections), and functions "
                "with network 'none' cannot run; run faasd as root (or with CAP_NET_ADMIN), see SECURITY.md",
                exc,
            )

    def _adopt(self, attrs: dict[str, Any]) -> None:
        self.network_id = str(attrs["Id"])
        self.bridge = _bridge_name(attrs)
        self._subnets = _subnets(attrs)

    def _ensure_network(self, client: docker.DockerClient) -> dict[str, Any]:
        """faasd's network as the engine describes it, made (or made anew) if need be."""
        attrs = self._inspect(client)
        if attrs is not None:
            problem = _unsafe(attrs)
            if problem is None:
                return attrs
            if attrs.get("Containers"):
                raise EngineUnavailable(
                    f"Docker network {self.name} {problem} (an older faasd made it, or someone by hand) and "
                    f"{len(attrs['Containers'])} container(s) are attached; stop them and remove it "
                    f"(docker network rm {self.name}); faasd then makes it anew"
                )
            log.warning("making Docker network %s anew: it %s", self.name, problem)
            client.api.remove_network(attrs["Id"])
        try:
            client.api.create_network(
                self.name,
                driver="bridge",
                options={ICC_OPTION: "false"},
                enable_ipv6=False,
                labels={"faasd.managed": "true"},
                check_duplicate=True,
            )
            log.info("created Docker network %s (inter-container traffic disabled)", self.name)
        except docker.errors.APIError:
            pass  # another faasd made it at the same moment: checked below like any other
        attrs = self._inspect(client)
        if attrs is None:
            raise EngineUnavailable(f"Docker network {self.name} could not be made")
        problem = _unsafe(attrs)
        if problem is not None:
            raise EngineUnavailable(f"Docker network {self.name} {problem}; remove it (docker network rm {self.name})")
        return attrs

    def _inspect(self, client: docker.DockerClient, name: str | None = None) -> dict[str, Any] | None:
        """The network named exactly ``name`` (default: faasd's), never one whose id merely starts so."""
        name = self.name if name is None else name
        # The engine's name filter matches substrings ("faasd" finds "faasd-compose").
        for found in client.api.networks(names=[name]):
            if found.get("Name") == name:
                try:
                    return dict(client.api.inspect_network(found["Id"]))
                except docker.errors.NotFound:
                    return None
        return None

    # -- checks -------------------------------------------------------------------

    def check_container(self, network_id: str) -> None:
        """A container just started: it must be on the network faasd set up (not one made since)."""
        if network_id != self.network_id:
            self.ready = False  # the next container makes faasd look again
            raise EngineUnavailable(f"Docker network {self.name} was replaced while faasd ran; setting it up again")

    def verify(self, client: docker.DockerClient) -> bool:
        """Whether the network and the firewall are still as set up; if not, set them up again.

        Returns True when something had to be repaired.
        """
        if not self.ready:
            self.ensure(client)
            return True
        attrs = self._inspect(client)
        if attrs is None or attrs["Id"] != self.network_id or _unsafe(attrs) is not None:
            log.warning("Docker network %s changed under faasd; setting it up again", self.name)
            self.ready = False
            self.ensure(client)
            return True
        if self._mode != "off" and self.firewall.state.active and not self.firewall.intact(self.bridge):
            log.warning(
                "the host firewall's rules for %s were removed (a firewall reload?); adding them again", self.bridge
            )
            self._setup_firewall(client)
            return True
        return False

    # -- network: none --------------------------------------------------------------

    def seal(self, container_id: str, address: str) -> None:
        self.firewall.seal(address, container_id)
        self._sealed[container_id] = address

    def unseal(self, container_id: str) -> None:
        """The container is gone (removed or not found): its rule may go."""
        address = self._sealed.get(container_id)
        if address is None:
            return
        self.firewall.unseal(address, container_id)
        del self._sealed[container_id]

    # -- user networks ----------------------------------------------------------------

    def join(self, client: docker.DockerClient, container_id: str, network: str, function: str) -> Attachment:
        """Put the container on the user's Docker ``network``, with the rules that keep it apart there.

        Called before the function's code loads. Raises FirewallError without the
        host firewall, EngineUnavailable when the network is missing or unfit; the
        caller then removes the container (its rules go with :meth:`leave`).
        """
        if not self.firewall.state.active:
            raise FirewallError(f"the host firewall is off: {self.firewall.state.reason}")
        if _bridge_filtering() is not True:
            raise EngineUnavailable(
                f"function '{function}' is on Docker network '{network}', but bridged traffic bypasses iptables "
                f"here ({BRIDGE_NF} is not 1), so the functions on it could not be kept apart; load br_netfilter "
                "and set it to 1 (SECURITY.md)"
            )
        attrs = self._inspect(client, network)
        if attrs is None:
            raise EngineUnavailable(
                f"function '{function}' is on Docker network '{network}', which does not exist; create it "
                f"(docker network create {network}) or change the function's network"
            )
        problem = self._unfit(attrs)
        if problem is not None:
            raise EngineUnavailable(f"function '{function}' cannot be put on Docker network '{network}': it {problem}")
        # From here until the rules are in, the container runs faasd's generic
        # runtime only (it takes code only with its token), not the function.
        client.api.connect_container_to_network(container_id, attrs["Id"])
        endpoints = client.api.inspect_container(container_id)["NetworkSettings"]["Networks"] or {}
        endpoint: dict[str, Any] = next((e for e in endpoints.values() if e.get("NetworkID") == attrs["Id"]), {})
        address, mac = str(endpoint.get("IPAddress") or ""), str(endpoint.get("MacAddress") or "")
        if not address or not mac:
            raise EngineUnavailable(
                f"container {container_id[:12]} has no IPv4 address or MAC on Docker network '{network}'"
            )
        attachment = Attachment(network, _bridge_name(attrs), address, mac)
        self.firewall.attach(container_id, attachment)
        return attachment

    def leave(self, container_id: str) -> None:
        """The container is gone (removed or not found): its user network rules may go."""
        self.firewall.detach(container_id)

    def _unfit(self, attrs: dict[str, Any]) -> str | None:
        """Why a user's network cannot hold a function, or None."""
        options = attrs.get("Options") or {}
        if attrs.get("Name") in DOCKER_NETWORKS or options.get(DEFAULT_BRIDGE_OPTION) == "true":
            return "is one of Docker's own networks"
        if attrs.get("Id") == self.network_id or (attrs.get("Labels") or {}).get("faasd.managed") == "true":
            return "is a network of faasd's own, where functions cannot reach each other's services"
        if attrs.get("Driver") != "bridge":
            return f"is a {attrs.get('Driver')} network, not a bridge: faasd can keep functions apart on bridges only"
        if attrs.get("EnableIPv6"):
            return "has IPv6, which faasd's firewall does not cover"
        if _bridge_name(attrs) == self.bridge:
            return "uses faasd's own bridge"
        link_local = ipaddress.ip_network(LINK_LOCAL)
        if any(subnet.version == 4 and subnet.overlaps(link_local) for subnet in _subnets(attrs)):
            return f"has a link-local subnet ({LINK_LOCAL}), which functions may not reach"
        return None

    # -- the data plane's guard, and the report ------------------------------------------

    def refuses(self, peer: bytes) -> bool:
        """Whether a client at ``peer`` is a function container that no firewall keeps off faasd."""
        if self.firewall.state.active or not self._subnets or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.decode())
        except ValueError:
            return False
        return any(address in subnet for subnet in self._subnets)

    def report(self) -> dict[str, Any]:
        if not self.ready:
            traffic = "unknown (engine not reached yet)"
        elif self._bridge_filtering is False:
            traffic = f"NOT blocked ({BRIDGE_NF} is 0)"
        else:
            traffic = "blocked"
        on_user_networks: dict[str, int] = {}
        for attachment in self.firewall.attached().values():
            on_user_networks[attachment.network] = on_user_networks.get(attachment.network, 0) + 1
        return {
            "network": self.name,
            "inter_container_traffic": traffic,
            "firewall": self.firewall.state.to_json(),
            "sealed_containers": len(self._sealed),
            "user_networks": dict(sorted(on_user_networks.items())),  # network -> containers on it
        }


def _unsafe(attrs: dict[str, Any]) -> str | None:
    """Why a network cannot hold faasd's functions, or None."""
    if (attrs.get("Options") or {}).get(ICC_OPTION) != "false":
        return "lets its containers reach each other"
    if attrs.get("EnableIPv6"):
        return "has IPv6, which faasd's firewall does not cover"
    if attrs.get("Driver") != "bridge":
        return f"is a {attrs.get('Driver')} network, not a bridge"
    return None


def _bridge_name(attrs: dict[str, Any]) -> str:
    return str((attrs.get("Options") or {}).get(BRIDGE_NAME_OPTION) or "br-" + str(attrs["Id"])[:12])


def _subnets(attrs: dict[str, Any]) -> tuple[Network, ...]:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    return tuple(ipaddress.ip_network(c["Subnet"], strict=False) for c in configs if c.get("Subnet"))


def _bridge_filtering() -> bool | None:
    try:
        return BRIDGE_NF.read_text().strip() == "1"
    except OSError:
        return None  # not readable here (module not loaded yet: Docker loads it)
