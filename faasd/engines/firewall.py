"""The host firewall around faasd's function network (iptables, beside Docker's own rules).

Docker keeps the function containers apart from each other (the network is
made with inter-container traffic disabled, see engines/isolation.py) and from
containers on other networks (its DOCKER-ISOLATION chains). What Docker leaves
open is the host itself: a container can open a connection to any address of
the host (the bridge's gateway, the machine's own addresses), and so reach
faasd when it listens beyond loopback, a Docker engine on TCP, or any other
service of the machine. Two chains of this faasd's own close that:

``FAASD-IN-<hash of owner>``, jumped to from INPUT for packets from the bridge::

    -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN   answers to faasd's own calls
    -p tcp -j REJECT --reject-with tcp-reset              a new connection: refused at once
    -j REJECT                                             anything else: port unreachable

``FAASD-OUT-<hash of owner>``, jumped to from DOCKER-USER (FORWARD) for
packets from the bridge: ``-d 169.254.0.0/16 -j REJECT`` (link-local, where
clouds serve instance credentials), and one ``-s <address> -j REJECT`` per
container of a function with ``network: none``, tagged with the container's
id, added before its code is loaded and removed once the container is gone.
Functions on the default network otherwise reach beyond the machine as on
Lambda and Fission.

The chains are rebuilt at every start. Rules of a faasd that was killed and
never started again stay in force (they only refuse), and a ``none`` rule
whose container no longer exists is swept at the next start of any faasd on
the machine, so a stale rule cannot cut off a later container that is given
the same address. The iptables binary is the one whose tables hold Docker's
DOCKER-USER chain (nf_tables or legacy), so faasd's rules sit next to Docker's
whichever backend the host uses.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import threading
from collections.abc import Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)

CANDIDATES = ("iptables", "iptables-nft", "iptables-legacy")
TIMEOUT = 20.0
LINK_LOCAL = "169.254.0.0/16"
OUT_PREFIX = "FAASD-OUT-"
TAG = "faasd:"  # comment on a none rule: faasd:<container id, 12 hex>


class FirewallError(Exception):
    """iptables could not be used or refused a rule; the message says why."""


@dataclass(frozen=True)
class FirewallState:
    active: bool
    reason: str  # why not active, or the binary in use

    def to_json(self) -> dict[str, object]:
        return {"active": self.active, "detail": self.reason}


def chain_suffix(owner: str) -> str:
    """12 hex digits of the owner's hash: distinct owners never share chains (names are <= 28 chars)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:12].upper()


class HostFirewall:
    """Rules for one faasd (its owner label) on one bridge; every method blocks (run it off the loop)."""

    def __init__(self, owner: str) -> None:
        suffix = chain_suffix(owner)
        self.in_chain = f"FAASD-IN-{suffix}"
        self.out_chain = f"{OUT_PREFIX}{suffix}"
        self._binary: str | None = None
        self._bridge: str | None = None
        # address -> the containers it was cut off for: an address freed by one
        # container may be given to the next before the first one's rule goes.
        self._sealed: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self.state = FirewallState(False, "not set up yet")

    # -- plumbing -------------------------------------------------------------

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._binary is not None
        try:
            done = subprocess.run(
                [self._binary, "-w", "10", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
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
                    [path, "-w", "10", "-S", "DOCKER-USER"],
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT,
                    check=False,
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

    def _has_jump(self, parent: str, bridge: str, chain: str) -> bool:
        return self._iptables("-C", parent, "-i", bridge, "-j", chain, check=False).returncode == 0

    def _seal_rule(self, address: str, container_id: str) -> tuple[str, ...]:
        return ("-s", address, "-m", "comment", "--comment", TAG + container_id[:12], "-j", "REJECT")

    # -- life cycle -------------------------------------------------------------

    def setup(self, bridge: str, live_containers: Collection[str] | None = None) -> FirewallState:
        """Install (or rebuild) the chains for ``bridge``; raises FirewallError when iptables cannot be used.

        ``live_containers``: ids of the containers that exist now (None: unknown);
        ``none`` rules of any faasd whose container is not among them are swept.
        """
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
                self._iptables("-A", self.out_chain, "-d", LINK_LOCAL, "-j", "REJECT")
                for address, holders in self._sealed.items():  # a rebuild keeps what is sealed
                    for container_id in holders:
                        self._iptables("-I", self.out_chain, *self._seal_rule(address, container_id))
                for parent, chain in (("INPUT", self.in_chain), ("DOCKER-USER", self.out_chain)):
                    if not self._has_jump(parent, bridge, chain):
                        self._iptables("-I", parent, "1", "-i", bridge, "-j", chain)
                if live_containers is not None:
                    self._sweep_stale(live_containers)
            except FirewallError as exc:
                self.state = FirewallState(False, str(exc))
                raise
            self._bridge = bridge
            self.state = FirewallState(True, f"{self._binary} on {bridge}")
            log.info("host firewall: containers on %s cannot reach the host (%s)", bridge, self._binary)
            return self.state

    def intact(self, bridge: str) -> bool:
        """Whether both jumps still lead from ``bridge`` into this faasd's chains (a reload may flush them)."""
        with self._lock:
            if not self.state.active or self._bridge != bridge:
                return False
            return self._has_jump("INPUT", bridge, self.in_chain) and self._has_jump(
                "DOCKER-USER", bridge, self.out_chain
            )

    def _sweep_stale(self, live: Collection[str]) -> None:
        """Delete ``none`` rules, in any faasd's OUT chain, whose container is gone."""
        prefixes = {cid[:12] for cid in live}
        chains = [
            line.split()[1]
            for line in self._iptables("-S", check=False).stdout.splitlines()
            if line.startswith("-N " + OUT_PREFIX)
        ]
        for chain in chains:
            for line in self._iptables("-S", chain, check=False).stdout.splitlines():
                words = [word.strip('"') for word in line.split()]
                if words[:1] != ["-A"] or "--comment" not in words:
                    continue
                tag = words[words.index("--comment") + 1]
                if tag.startswith(TAG) and tag[len(TAG) :] not in prefixes:
                    self._iptables("-D", *words[1:], check=False)
                    log.info("removed a stale network-none rule (%s) from %s", tag, chain)

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
        """Remove this faasd's jumps and chains (at a clean shutdown with no container left)."""
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
            self._sealed.clear()
            self.state = FirewallState(False, "removed at shutdown")

    # -- network: none ------------------------------------------------------------

    def seal(self, address: str, container_id: str) -> None:
        """Nothing from ``address`` leaves the machine (the host is closed to it already)."""
        with self._lock:
            if not self.state.active:
                raise FirewallError(f"the host firewall is off: {self.state.reason}")
            self._iptables("-I", self.out_chain, *self._seal_rule(address, container_id))
            self._sealed.setdefault(address, set()).add(container_id)

    def unseal(self, address: str, container_id: str) -> None:
        """``container_id`` is gone: its rule goes. Raises FirewallError (and keeps it) if iptables fails."""
        with self._lock:
            holders = self._sealed.get(address)
            if holders is None or container_id not in holders:
                return
            if self.state.active:
                done = self._iptables("-D", self.out_chain, *self._seal_rule(address, container_id), check=False)
                if done.returncode != 0 and "does a matching rule exist" not in done.stderr.lower():
                    raise FirewallError(f"could not remove the rule of {container_id[:12]}: {done.stderr.strip()}")
            holders.discard(container_id)
            if not holders:
                del self._sealed[address]

    def sealed(self) -> dict[str, set[str]]:
        with self._lock:
            return {address: set(holders) for address, holders in self._sealed.items()}
