"""The host firewall around faasd's function network (iptables, beside Docker's own rules).

Docker keeps the function containers apart from each other (the network is
made with inter-container traffic disabled, see engines/docker.py) and from
containers on other networks (its DOCKER-ISOLATION chains). What Docker leaves
open is the host itself: a container can open a connection to any address of
the host (the bridge's gateway, the machine's own addresses), and so reach
faasd when it listens beyond loopback, a Docker engine on TCP, or any other
service of the machine. Two chains of this faasd's own close that:

``FAASD-IN-<owner>``, jumped to from INPUT for packets from the bridge::

    -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN   answers to faasd's own calls
    -p tcp -j REJECT --reject-with tcp-reset              a new connection: refused at once
    -j REJECT                                             anything else: port unreachable

``FAASD-OUT-<owner>``, jumped to from DOCKER-USER (FORWARD) for packets from
the bridge: one ``-s <address> -j REJECT`` per container of a function with
``network: none``, added before its code is loaded and removed with the
container. Functions on the default network reach beyond the machine as on
Lambda and Fission.

The chains are flushed at every start, so a faasd killed with -9 leaves no
rule that outlives it in effect. The iptables binary is the one whose tables
hold Docker's DOCKER-USER chain (nf_tables or legacy), so faasd's rules sit
next to Docker's whichever backend the host uses.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

CANDIDATES = ("iptables", "iptables-nft", "iptables-legacy")
TIMEOUT = 20.0


class FirewallError(Exception):
    """iptables could not be used or refused a rule; the message says why."""


@dataclass(frozen=True)
class FirewallState:
    active: bool
    reason: str  # why not active, or the binary in use

    def to_json(self) -> dict[str, object]:
        return {"active": self.active, "detail": self.reason}


class HostFirewall:
    """Rules for one faasd (its owner label) on one bridge; every method blocks (run it off the loop)."""

    def __init__(self, owner: str) -> None:
        suffix = owner[:12].upper()
        self.in_chain = f"FAASD-IN-{suffix}"
        self.out_chain = f"FAASD-OUT-{suffix}"
        self._binary: str | None = None
        self._bridge: str | None = None
        # address -> the containers it was cut off for: an address freed by one
        # container may be given to the next before the first one's rule goes.
        self._isolated: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.state = FirewallState(False, "not set up yet")

    # -- plumbing -------------------------------------------------------------

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._binary is not None
        try:
            done = subprocess.run(
                [self._binary, "-w", "5", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"{self._binary} {' '.join(args)}: {exc}") from exc
        if check and done.returncode != 0:
            raise FirewallError(f"{self._binary} {' '.join(args)}: {done.stderr.strip() or done.returncode}")
        return done

    def _find_binary(self) -> str:
        """The iptables whose tables hold Docker's DOCKER-USER chain."""
        errors = []
        for name in CANDIDATES:
            path = shutil.which(name)
            if path is None:
                continue
            try:
                done = subprocess.run(
                    [path, "-w", "5", "-S", "DOCKER-USER"], capture_output=True, text=True, timeout=TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{name}: {exc}")
                continue
            if done.returncode == 0:
                return path
            errors.append(f"{name}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        if not errors:
            raise FirewallError("no iptables binary found (install the iptables package)")
        raise FirewallError("iptables cannot read Docker's DOCKER-USER chain: " + "; ".join(errors))

    def _ensure_chain(self, chain: str) -> None:
        if self._iptables("-n", "-L", chain, check=False).returncode != 0:
            self._iptables("-N", chain)
        self._iptables("-F", chain)

    def _ensure_jump(self, parent: str, bridge: str, chain: str) -> None:
        rule = ("-i", bridge, "-j", chain)
        if self._iptables("-C", parent, *rule, check=False).returncode != 0:
            self._iptables("-I", parent, "1", *rule)

    # -- life cycle -------------------------------------------------------------

    def setup(self, bridge: str) -> FirewallState:
        """Install (or refresh) the chains for ``bridge``; raises FirewallError when iptables cannot be used."""
        with self._lock:
            try:
                self._binary = self._binary or self._find_binary()
                if self._bridge is not None and self._bridge != bridge:
                    self._remove_jumps(self._bridge)
                self._ensure_chain(self.in_chain)
                self._iptables(
                    "-A", self.in_chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"
                )
                self._iptables("-A", self.in_chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
                self._iptables("-A", self.in_chain, "-j", "REJECT")
                self._ensure_chain(self.out_chain)
                self._ensure_jump("INPUT", bridge, self.in_chain)
                self._ensure_jump("DOCKER-USER", bridge, self.out_chain)
            except FirewallError as exc:
                self.state = FirewallState(False, str(exc))
                raise
            self._bridge = bridge
            self._isolated.clear()
            self.state = FirewallState(True, f"{self._binary} on {bridge}")
            log.info("host firewall: containers on %s cannot reach the host (%s)", bridge, self._binary)
            return self.state

    def _remove_jumps(self, bridge: str | None = None) -> None:
        """Delete the jumps to this faasd's chains (from ``bridge``, or from any bridge)."""
        for parent, chain in (("INPUT", self.in_chain), ("DOCKER-USER", self.out_chain)):
            listed = self._iptables("-S", parent, check=False).stdout.splitlines()
            for line in listed:
                words = line.split()
                if len(words) < 3 or words[0] != "-A" or words[-2:] != ["-j", chain]:
                    continue
                if bridge is not None and ("-i" not in words or words[words.index("-i") + 1] != bridge):
                    continue
                self._iptables("-D", *words[1:], check=False)

    def teardown(self) -> None:
        """Remove this faasd's jumps and chains (at a clean shutdown, or after a kill -9)."""
        with self._lock:
            if self._binary is None:
                try:
                    self._binary = self._find_binary()
                except FirewallError:
                    return
            self._remove_jumps()
            for chain in (self.in_chain, self.out_chain):
                self._iptables("-F", chain, check=False)
                self._iptables("-X", chain, check=False)
            self._bridge = None
            self._isolated.clear()
            self.state = FirewallState(False, "removed at shutdown")

    # -- network: none ------------------------------------------------------------

    def isolate(self, address: str, container_id: str) -> None:
        """Nothing from ``address`` leaves the machine (the host is closed to it already)."""
        with self._lock:
            if not self.state.active:
                raise FirewallError(f"the host firewall is off: {self.state.reason}")
            holders = self._isolated.get(address)
            if holders is None:
                self._iptables("-I", self.out_chain, "-s", address, "-j", "REJECT")
                holders = self._isolated[address] = set()
            holders.add(container_id)

    def release(self, address: str, container_id: str) -> None:
        """``container_id`` is gone: its address may leave again once no other container holds it."""
        with self._lock:
            holders = self._isolated.get(address)
            if holders is None:
                return
            holders.discard(container_id)
            if not holders:
                del self._isolated[address]
                self._iptables("-D", self.out_chain, "-s", address, "-j", "REJECT", check=False)

    def isolated_count(self) -> int:
        return len(self._isolated)
