"""What keeps function containers apart: faasd's network and the host firewall around it.

- The network (``--network``, default ``faasd``) is a bridge made with
  inter-container traffic disabled and without IPv6. One that lacks either
  (an older faasd's, or one made by hand) is made anew when nothing is
  attached, else faasd refuses to use it and says how to fix it.
- The host firewall (engines/firewall.py) closes the host to the bridge and
  seals off ``network: none`` containers.
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

from faasd.core.errors import EngineUnavailable
from faasd.core.settings import Settings
from faasd.engines.firewall import FirewallError, FirewallState, HostFirewall

log = logging.getLogger(__name__)

ICC_OPTION = "com.docker.network.bridge.enable_icc"
# Docker's drop rule for inter-container traffic applies only when bridged
# packets go through iptables (br_netfilter); rootless engines may lack it.
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Isolation:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.network
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
        live = [str(c["Id"]) for c in client.api.containers(all=True, quiet=True)]
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
        options = attrs.get("Options") or {}
        self.bridge = str(options.get("com.docker.network.bridge.name") or "br-" + self.network_id[:12])
        configs = (attrs.get("IPAM") or {}).get("Config") or []
        self._subnets = tuple(ipaddress.ip_network(c["Subnet"], strict=False) for c in configs if c.get("Subnet"))

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

    def _inspect(self, client: docker.DockerClient) -> dict[str, Any] | None:
        # The engine's name filter matches substrings ("faasd" finds "faasd-compose").
        for found in client.api.networks(names=[self.name]):
            if found.get("Name") == self.name:
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
        return {
            "network": self.name,
            "inter_container_traffic": traffic,
            "firewall": self.firewall.state.to_json(),
            "sealed_containers": len(self._sealed),
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


def _bridge_filtering() -> bool | None:
    try:
        return BRIDGE_NF.read_text().strip() == "1"
    except OSError:
        return None  # not readable here (module not loaded yet: Docker loads it)
