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
packets from the bridge: ``-i <bridge> -d 169.254.0.0/16 -j REJECT``
(link-local, where clouds serve instance credentials), and one ``-s <address>
-j REJECT`` per container of a function with ``network: none``, tagged with the
container's id, added before its code is loaded and removed once the container
is gone. Functions on the default network otherwise reach beyond the machine
as on Lambda and Fission.

A function on a user's Docker network (``network: faasd-apps``) is put on that
network's bridge too, so it reaches the services there. Per container, tagged
with its id like a seal, added before its code loads, removed once it is gone
(:func:`forward_rules`, :func:`input_rules`)::

    FAASD-OUT-<hash>    (DOCKER-USER -i <user bridge> / -o <user bridge> jump to it)
      -o <user bridge> -d <its address> -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT
            nothing opens a connection to it over that network (other functions, the services)
      -i <user bridge> -m mac --mac-source <its MAC> -d 169.254.0.0/16 -j REJECT
            link-local, as on faasd's bridge (its default route may be through the user bridge)
    FAASD-NETIN-<hash>  (INPUT -i <user bridge> jumps to it)
      -i <user bridge> -m mac --mac-source <its MAC> -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT
            it opens no connection to the host through that network

The host rules match the container's MAC on the user bridge, not its address:
the function may send from either of its addresses (its address on faasd's
network too) through either interface, but it cannot change its MAC (it has
no capability). Other containers on that network (the user's services) are
matched by none of these rules. The jumps for a user bridge are added with its
first container and removed with its last.

The chains are rebuilt at every start. Rules of a faasd that was killed and
never started again stay in force (they only refuse), and a container's rule
(``none``, user network) whose container no longer exists is swept at the
next start of any faasd on the machine, so a stale rule cannot cut off a later
container that is given the same address (or MAC). The iptables binary is the one whose tables hold Docker's
DOCKER-USER chain (nf_tables or legacy), so faasd's rules sit next to Docker's
whichever backend the host uses.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)

CANDIDATES = ("iptables", "iptables-nft", "iptables-legacy")
TIMEOUT = 20.0
LINK_LOCAL = "169.254.0.0/16"
OUT_PREFIX = "FAASD-OUT-"
NETIN_PREFIX = "FAASD-NETIN-"
TAG = "faasd:"  # comment on a container's rule (none, user network): faasd:<container id, 12 hex>
# Packets of connections that the other side opened (not answers to the container's own). A
# direction, not a state: a connection opened in the moment before the rules went in is cut too.
NOT_ANSWERS = ("-m", "conntrack", "--ctdir", "ORIGINAL")


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


@dataclass(frozen=True)
class Attachment:
    """A function's container on a user's network: that network's bridge, and the container's address and MAC there."""

    network: str
    bridge: str
    address: str
    mac: str


def _tag(container_id: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", TAG + container_id[:12])


def forward_rules(attachment: Attachment, container_id: str) -> list[tuple[str, ...]]:
    """The container's rules in the OUT chain (FORWARD): no connection into it over the user bridge,
    no link-local address out of it through that bridge."""
    bridge, tag = attachment.bridge, _tag(container_id)
    return [
        ("-o", bridge, "-d", attachment.address, *NOT_ANSWERS, *tag, "-j", "REJECT"),
        ("-i", bridge, "-m", "mac", "--mac-source", attachment.mac, "-d", LINK_LOCAL, *tag, "-j", "REJECT"),
    ]


def input_rules(attachment: Attachment, container_id: str) -> list[tuple[str, ...]]:
    """The container's rule in the NETIN chain (INPUT): no connection from it to the host through the user bridge."""
    tag = _tag(container_id)
    return [("-i", attachment.bridge, "-m", "mac", "--mac-source", attachment.mac, *NOT_ANSWERS, *tag, "-j", "REJECT")]


def bridge_jumps(bridge: str, out_chain: str, netin_chain: str) -> list[tuple[str, str, str, str]]:
    """(parent chain, -i or -o, bridge, target) of every jump a user bridge needs."""
    return [
        ("DOCKER-USER", "-i", bridge, out_chain),
        ("DOCKER-USER", "-o", bridge, out_chain),
        ("INPUT", "-i", bridge, netin_chain),
    ]


class HostFirewall:
    """Rules for one faasd (its owner label) on one bridge; every method blocks (run it off the loop)."""

    def __init__(self, owner: str) -> None:
        suffix = chain_suffix(owner)
        self.in_chain = f"FAASD-IN-{suffix}"
        self.out_chain = f"{OUT_PREFIX}{suffix}"
        self.netin_chain = f"{NETIN_PREFIX}{suffix}"
        self._binary: str | None = None
        self._bridge: str | None = None
        # address -> the containers it was cut off for: an address freed by one
        # container may be given to the next before the first one's rule goes.
        self._sealed: dict[str, set[str]] = {}
        # container id -> where it is on a user's network (its rules are keyed by its id).
        self._attached: dict[str, Attachment] = {}
        self._jumped: set[str] = set()  # the user bridges whose jumps are in place
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

    def _has_jump(self, parent: str, bridge: str, chain: str, direction: str = "-i") -> bool:
        return self._iptables("-C", parent, direction, bridge, "-j", chain, check=False).returncode == 0

    def _add_bridge_jumps(self, bridge: str) -> None:
        if bridge in self._jumped:  # added with an earlier container (intact() checks they still are)
            return
        for parent, direction, dev, chain in bridge_jumps(bridge, self.out_chain, self.netin_chain):
            if not self._has_jump(parent, dev, chain, direction):
                self._iptables("-I", parent, "1", direction, dev, "-j", chain)
        self._jumped.add(bridge)

    def _user_bridges(self) -> set[str]:
        return {attachment.bridge for attachment in self._attached.values()}

    def _prune_bridge_jumps(self, keep: Collection[str]) -> None:
        """Delete the jumps into this faasd's chains from user bridges not in ``keep`` (faasd's own bridge stays)."""
        for parent in ("INPUT", "DOCKER-USER"):
            for line in self._iptables("-S", parent, check=False).stdout.splitlines():
                words = line.split()
                if len(words) != 6 or words[0] != "-A" or words[2] not in ("-i", "-o") or words[4] != "-j":
                    continue
                if words[5] not in (self.out_chain, self.netin_chain) or words[3] in keep:
                    continue
                if words[5] == self.out_chain and words[2] == "-i" and words[3] == self._bridge:
                    continue
                self._iptables("-D", *words[1:], check=False)
        self._jumped &= set(keep)

    def _seal_rule(self, address: str, container_id: str) -> tuple[str, ...]:
        return ("-s", address, "-m", "comment", "--comment", TAG + container_id[:12], "-j", "REJECT")

    # -- life cycle -------------------------------------------------------------

    def setup(
        self, bridge: str, live_containers: Collection[str] | Callable[[], Collection[str]] | None = None
    ) -> FirewallState:
        """Install (or rebuild) the chains for ``bridge``; raises FirewallError when iptables cannot be used.

        ``live_containers``: ids of the containers that exist now (None: unknown),
        or what lists them (asked after the rules are read, so that a container
        another faasd makes meanwhile is never taken for a gone one);
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
                # Only from faasd's bridge: the user bridges' other containers are not faasd's to restrict.
                self._iptables("-A", self.out_chain, "-i", bridge, "-d", LINK_LOCAL, "-j", "REJECT")
                for address, holders in self._sealed.items():  # a rebuild keeps what is sealed
                    for container_id in holders:
                        self._iptables("-I", self.out_chain, *self._seal_rule(address, container_id))
                self._ensure_chain(self.netin_chain)
                self._jumped.clear()  # checked again below
                for container_id, attachment in self._attached.items():  # and what is on user networks
                    for rule in forward_rules(attachment, container_id):
                        self._iptables("-I", self.out_chain, *rule)
                    for rule in input_rules(attachment, container_id):
                        self._iptables("-A", self.netin_chain, *rule)
                for parent, chain in (("INPUT", self.in_chain), ("DOCKER-USER", self.out_chain)):
                    if not self._has_jump(parent, bridge, chain):
                        self._iptables("-I", parent, "1", "-i", bridge, "-j", chain)
                self._bridge = bridge
                user_bridges = self._user_bridges()
                for user_bridge in user_bridges:
                    self._add_bridge_jumps(user_bridge)
                self._prune_bridge_jumps(user_bridges)  # an earlier run's, whose containers are gone
                if live_containers is not None:
                    self._sweep_stale(live_containers)
            except FirewallError as exc:
                self.state = FirewallState(False, str(exc))
                raise
            self.state = FirewallState(True, f"{self._binary} on {bridge}")
            log.info("host firewall: containers on %s cannot reach the host (%s)", bridge, self._binary)
            return self.state

    def intact(self, bridge: str) -> bool:
        """Whether both jumps still lead from ``bridge`` into this faasd's chains (a reload may flush them)."""
        with self._lock:
            if not self.state.active or self._bridge != bridge:
                return False
            if not (
                self._has_jump("INPUT", bridge, self.in_chain) and self._has_jump("DOCKER-USER", bridge, self.out_chain)
            ):
                return False
            return all(
                self._has_jump(parent, dev, chain, direction)
                for user_bridge in self._user_bridges()
                for parent, direction, dev, chain in bridge_jumps(user_bridge, self.out_chain, self.netin_chain)
            )

    def _sweep_stale(self, live: Collection[str] | Callable[[], Collection[str]]) -> None:
        """Delete the rules of gone containers (``none``, user networks) in any faasd's OUT and NETIN chains."""
        chains = [
            line.split()[1]
            for line in self._iptables("-S", check=False).stdout.splitlines()
            if line.startswith(("-N " + OUT_PREFIX, "-N " + NETIN_PREFIX))
        ]
        tagged: list[tuple[str, list[str], str]] = []
        for chain in chains:
            for line in self._iptables("-S", chain, check=False).stdout.splitlines():
                words = [word.strip('"') for word in line.split()]
                if words[:1] != ["-A"] or "--comment" not in words:
                    continue
                tag = words[words.index("--comment") + 1]
                if tag.startswith(TAG):
                    tagged.append((chain, words, tag))
        if not tagged:
            return
        # Only now: every rule read above belongs to a container made before it (a
        # rule is added after its container is), so a container still there is listed.
        try:
            prefixes = {cid[:12] for cid in (live() if callable(live) else live)}
        except Exception as exc:  # the engine did not answer: the next start sweeps them (they only refuse)
            log.warning("could not list the containers to sweep stale rules: %s", exc)
            return
        for chain, words, tag in tagged:
            if tag[len(TAG) :] not in prefixes:
                self._iptables("-D", *words[1:], check=False)
                log.info("removed a stale rule of a container (%s) from %s", tag, chain)

    def _remove_jumps(self, bridge: str | None = None) -> None:
        """Delete the jumps to this faasd's chains (from ``bridge``, or from any bridge)."""
        for parent, chain in (
            ("INPUT", self.in_chain),
            ("DOCKER-USER", self.out_chain),
            ("INPUT", self.netin_chain),
        ):
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
            for chain in (self.in_chain, self.out_chain, self.netin_chain):
                self._iptables("-F", chain, check=False)
                self._iptables("-X", chain, check=False)
            self._bridge = None
            self._sealed.clear()
            self._attached.clear()
            self._jumped.clear()
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

    # -- user networks ----------------------------------------------------------

    def attach(self, container_id: str, attachment: Attachment) -> None:
        """The container is on a user's network: nothing opens a connection to it there, and
        it opens none to the host through it. Raises FirewallError (the container must then not run code)."""
        with self._lock:
            if not self.state.active:
                raise FirewallError(f"the host firewall is off: {self.state.reason}")
            # Known before the rules go in: a removal after a failure here deletes whatever was added.
            self._attached[container_id] = attachment
            for rule in forward_rules(attachment, container_id):
                self._iptables("-I", self.out_chain, *rule)
            for rule in input_rules(attachment, container_id):
                self._iptables("-I", self.netin_chain, *rule)
            self._add_bridge_jumps(attachment.bridge)

    def detach(self, container_id: str) -> None:
        """``container_id`` is gone: its rules go (and the bridge's jumps with its last container).

        Raises FirewallError (and keeps what it could not remove) if iptables fails.
        """
        with self._lock:
            attachment = self._attached.get(container_id)
            if attachment is None:
                return
            if self.state.active:
                failed = []
                for chain, rules in (
                    (self.out_chain, forward_rules(attachment, container_id)),
                    (self.netin_chain, input_rules(attachment, container_id)),
                ):
                    for rule in rules:
                        done = self._iptables("-D", chain, *rule, check=False)
                        if done.returncode != 0 and "does a matching rule exist" not in done.stderr.lower():
                            failed.append(done.stderr.strip())
                if failed:
                    raise FirewallError(f"could not remove the rules of {container_id[:12]}: {'; '.join(failed)}")
            del self._attached[container_id]
            if self.state.active and attachment.bridge not in self._user_bridges():
                self._prune_bridge_jumps(self._user_bridges())

    def attached(self) -> dict[str, Attachment]:
        with self._lock:
            return dict(self._attached)
