"""Trust boundaries, attacked from inside a function (both runtimes) on the real engine.

A function must not reach another function's container, faasd's listeners,
the host or the Docker engine; a pooled container takes code only from faasd;
a function with network "none" reaches nothing beyond faasd. "Beyond the
machine" is played by a network namespace this test makes (a veth pair on
198.18.0.0/30, the benchmarking range), so no traffic leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
import requests

from faasd.engines.firewall import HostFirewall
from tests.integration.harness import FaasdProcess, free_port, wait_for

SOCKET_PATHS = ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"]

PROBE_PY = """import json, os, socket
from concurrent.futures import ThreadPoolExecutor


def attempt(target):
    host, port = target
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return "error: " + str(e)
    finally:
        s.close()


def fetch(url):
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return "answered %d" % r.status
    except urllib.error.HTTPError as e:
        return "answered %d" % e.code
    except Exception as e:
        return "error: %r" % e


def main(context):
    plan = context.request.json()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, plan["tcp"]))
        pages = list(pool.map(fetch, plan.get("http", [])))
    return {
        "self": socket.gethostbyname(socket.gethostname()),
        "tcp": {f"{h}:{p}": r for (h, p), r in zip(plan["tcp"], results)},
        "http": dict(zip(plan.get("http", []), pages)),
        "paths": {p: os.path.exists(p) for p in plan["paths"]},
        "env": dict(os.environ),
    }
"""

PROBE_JS = """const net = require('net');
const fs = require('fs');
const os = require('os');

function attempt([host, port]) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r) => { s.destroy(); resolve(r); };
    s.setTimeout(2000, () => done('timeout'));
    s.on('connect', () => done('connected'));
    s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error: ' + e.code));
  });
}

module.exports = async (context) => {
  const plan = context.request.body;
  const results = await Promise.all(plan.tcp.map(attempt));
  const self = Object.values(os.networkInterfaces()).flat().find((i) => i.family === 'IPv4' && !i.internal);
  const tcp = {};
  plan.tcp.forEach(([h, p], i) => { tcp[`${h}:${p}`] = results[i]; });
  const paths = {};
  for (const p of plan.paths) paths[p] = fs.existsSync(p);
  return { self: self ? self.address : null, tcp, paths, env: { ...process.env } };
};
"""

# Runs once per POST (the run is counted in a file), then returns a header that HTTP/1.1 cannot carry.
BAD_HEADER_PY = """import os

COUNT = "/tmp/runs"


def main(context):
    if context.request.method == "GET":
        return open(COUNT).read() if os.path.exists(COUNT) else "0"
    runs = int(open(COUNT).read()) + 1 if os.path.exists(COUNT) else 1
    with open(COUNT, "w") as f:
        f.write(str(runs))
    return "ok", 200, {"X-Greeting": "Zo\\u00eb \\u2603"}
"""

BAD_HEADER_JS = """const fs = require('fs');
const COUNT = '/tmp/runs';

module.exports = async (context) => {
  const runs = fs.existsSync(COUNT) ? parseInt(fs.readFileSync(COUNT, 'utf8'), 10) : 0;
  if (context.request.method === 'GET') return String(runs);
  fs.writeFileSync(COUNT, String(runs + 1));
  return { status: 200, body: 'ok', headers: { 'x-split': 'one\\r\\nSet-Cookie: injected=1' } };
};
"""


def iptables_rules(chain: str) -> str:
    done = subprocess.run(["iptables", "-w", "10", "-S", chain], capture_output=True, text=True, check=False)
    return done.stdout


def network_of(engine: docker.DockerClient, name: str = "faasd") -> dict[str, Any]:
    return engine.api.inspect_network(name)


def container_addresses(engine: docker.DockerClient, network: str = "faasd") -> set[str]:
    attrs = network_of(engine, network)
    return {c["IPv4Address"].split("/")[0] for c in (attrs.get("Containers") or {}).values()}


def probe(daemon: FaasdProcess, function: str, plan: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{daemon.url}/function/{function}", json=plan, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def exposed(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaasdProcess]:
    """A faasd listening on every address of the host (so also on the bridge's gateway), firewall on."""
    daemon = FaasdProcess(tmp_path_factory.mktemp("exposed"), engine, host="0.0.0.0", default_poolsize=2)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def host_listener() -> Iterator[int]:
    """A TCP service on every address of the host: what an engine on tcp://0.0.0.0:2375 would be."""
    server = socket.create_server(("0.0.0.0", free_port()))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture(scope="module")
def outside() -> Iterator[tuple[str, int]]:
    """A host "beyond the machine": a listener in a network namespace of this test's own."""
    ip = shutil.which("ip")
    if ip is None:
        raise AssertionError("the 'ip' command (iproute2) is missing; scripts/ensure-docker.sh installs it")
    suffix = str(os.getpid() % 100000)
    ns, host_end, ns_end = f"faasd-out-{suffix}", f"fdo{suffix}h", f"fdo{suffix}n"

    def run(*args: str) -> None:
        subprocess.run([ip, *args], check=True, capture_output=True)

    port = 18080
    server: subprocess.Popen[bytes] | None = None
    try:
        run("netns", "add", ns)
        run("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        run("link", "set", ns_end, "netns", ns)
        run("addr", "add", "198.18.0.1/30", "dev", host_end)
        run("link", "set", host_end, "up")
        run("netns", "exec", ns, "ip", "addr", "add", "198.18.0.2/30", "dev", ns_end)
        run("netns", "exec", ns, "ip", "link", "set", ns_end, "up")
        run("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        code = (
            "import socket\n"
            f"s = socket.create_server(('198.18.0.2', {port}))\n"
            "s.listen(16)\n"
            "while True:\n"
            "    c, _ = s.accept()\n"
            "    c.close()\n"
        )
        server = subprocess.Popen([ip, "netns", "exec", ns, sys.executable, "-c", code])

        def listening() -> bool:
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex(("198.18.0.2", port)) == 0

        wait_for(listening, "the outside listener", timeout=15)
        yield "198.18.0.2", port
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        subprocess.run([ip, "link", "del", host_end], capture_output=True, check=False)
        subprocess.run([ip, "netns", "del", ns], capture_output=True, check=False)


@pytest.mark.parametrize(
    ("env", "code", "filename"), [("python", PROBE_PY, "probe.py"), ("nodejs", PROBE_JS, "probe.js")]
)
def test_a_function_reaches_no_other_container_nor_the_host(
    exposed: FaasdProcess,
    engine: docker.DockerClient,
    host_listener: int,
    env: str,
    code: str,
    filename: str,
) -> None:
    # A victim that is specialized, plus the pooled containers: all targets.
    exposed.create_function(f"victim-{env}", "python", 'def main():\n    return "victim"\n')
    assert requests.get(f"{exposed.url}/function/victim-{env}", timeout=30).text == "victim"
    exposed.create_function(f"probe-{env}", env, code, filename=filename)
    exposed.wait_pools_full()
    network = network_of(engine)
    assert network["Options"].get("com.docker.network.bridge.enable_icc") == "false"
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    others = container_addresses(engine)
    plan = {
        "tcp": [[address, 8888] for address in sorted(others)]
        + [[gateway, exposed.port], [gateway, host_listener], [gateway, 2375], [gateway, 22]],
        "paths": SOCKET_PATHS,
    }
    result = probe(exposed, f"probe-{env}", plan)
    others.discard(result["self"])
    assert len(others) >= 3, "the victim and the pools should be there to attack"
    for address in others:
        assert result["tcp"][f"{address}:8888"] in ("refused", "timeout"), (address, result["tcp"])
    for port in (exposed.port, host_listener, 2375, 22):
        assert result["tcp"][f"{gateway}:{port}"] in ("refused", "timeout"), (port, result["tcp"])
    assert result["paths"] == dict.fromkeys(SOCKET_PATHS, False)
    # The container's specialization token is gone before the code loads.
    assert "FAASD_SPECIALIZE_TOKEN" not in result["env"]
    assert not any("SPECIALIZE" in name for name in result["env"])
    # faasd itself, on the same address, still serves the host.
    assert requests.get(f"http://{gateway}:{exposed.port}/healthz", timeout=10).status_code == 200


def test_a_pooled_container_takes_code_only_from_faasd(exposed: FaasdProcess, engine: docker.DockerClient) -> None:
    """The attack of issue 10: specialize every pooled container first, then deploy a victim."""
    exposed.wait_pools_full()
    pooled = [
        c
        for c in engine.containers.list(filters={"label": [f"faasd.owner={exposed.owner}", "faasd.function="]})
        if c.name.split("-")[2] in ("nodejs", "python")  # generic: not renamed for a function yet
    ]
    assert pooled, "the pools should hold containers"
    attack = {"filename": "x.py", "code": "def main():\n    return 'pwned'\n", "entrypoint": "", "env": {}}
    for container in pooled:
        address = container.attrs["NetworkSettings"]["Networks"]["faasd"]["IPAddress"]
        for headers in ({}, {"Authorization": "Bearer guessed"}):
            refused = requests.post(f"http://{address}:8888/v2/specialize", json=attack, headers=headers, timeout=10)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
    # The containers stayed generic: every environment's next first calls work.
    for n in range(2):
        for env, code, name in (
            ("python", 'def main():\n    return "mine"\n', "mine.py"),
            ("nodejs", "module.exports = async () => 'mine';\n", "mine.js"),
        ):
            exposed.create_function(f"after-{env}-{n}", env, code, filename=name)
            answer = requests.get(f"{exposed.url}/function/after-{env}-{n}", timeout=30)
            assert (answer.status_code, answer.text) == (200, "mine")


def test_network_none_cuts_a_function_off_and_default_does_not(
    start_faasd: Callable[..., FaasdProcess], outside: tuple[str, int]
) -> None:
    daemon = start_faasd(default_poolsize=1)
    daemon.create_function("open", "python", PROBE_PY, filename="probe.py")
    daemon.create_function("sealed", "python", PROBE_PY, filename="probe.py", network="none")
    target = f"{outside[0]}:{outside[1]}"
    plan = {"tcp": [list(outside)], "paths": []}
    assert probe(daemon, "open", plan)["tcp"][target] == "connected"
    sealed = probe(daemon, "sealed", plan)
    assert sealed["tcp"][target] in ("refused", "timeout")
    # The seal is a rule tagged with the container, and it goes with the container.
    out_chain = HostFirewall(daemon.owner).out_chain
    assert f"-s {sealed['self']}/32" in iptables_rules(out_chain)
    daemon.api("DELETE", "/v1/functions/sealed?force=true")
    wait_for(lambda: "faasd:" not in iptables_rules(out_chain), "the seal to be removed with its container")
    assert probe(daemon, "open", plan)["tcp"][target] == "connected"


@pytest.mark.parametrize(
    ("env", "code", "filename", "header"),
    [("python", BAD_HEADER_PY, "bad.py", "X-Greeting"), ("nodejs", BAD_HEADER_JS, "bad.js", "x-split")],
)
def test_an_unsendable_header_is_a_500_and_the_call_runs_once(
    faasd: FaasdProcess, env: str, code: str, filename: str, header: str
) -> None:
    name = f"badheader-{env}"
    faasd.create_function(name, env, code, filename=filename)
    answer = requests.post(f"{faasd.url}/function/{name}", data=b"x", timeout=30)
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "function_error"
    assert header.lower() in error["message"].lower()
    runs = requests.get(f"{faasd.url}/function/{name}", timeout=30)
    assert (runs.status_code, runs.text) == (200, "1")


def test_status_tells_what_keeps_functions_apart(exposed: FaasdProcess) -> None:
    isolation = exposed.status()["isolation"]
    assert isolation["network"] == "faasd"
    assert isolation["inter_container_traffic"] == "blocked"
    assert isolation["firewall"]["active"] is True
    shown = exposed.faas("status")
    assert shown.returncode == 0, shown.stderr
    assert "isolation: network faasd (container to container: blocked), host firewall on" in shown.stdout


def test_without_the_firewall_faasd_still_answers_no_function(
    start_faasd: Callable[..., FaasdProcess], engine: docker.DockerClient
) -> None:
    """--firewall off: the host is open to containers, but faasd's own listener closes their connections."""
    # A network of its own: no other faasd's firewall covers it.
    network = f"faasd-nofw-{os.getpid()}"
    try:
        daemon = start_faasd(host="0.0.0.0", firewall="off", default_poolsize=1, network=network)
        _unguarded_faasd_closes_function_connections(daemon, engine, network)
        daemon.cleanup()
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            engine.api.remove_network(network)


def _unguarded_faasd_closes_function_connections(
    daemon: FaasdProcess, engine: docker.DockerClient, network: str
) -> None:
    isolation = daemon.status()["isolation"]
    assert isolation["firewall"]["active"] is False
    assert "OFF" in daemon.faas("status").stdout
    daemon.create_function("probe", "python", PROBE_PY, filename="probe.py")
    gateway = network_of(engine, network)["IPAM"]["Config"][0]["Gateway"]
    url = f"http://{gateway}:{daemon.port}/healthz"
    result = probe(daemon, "probe", {"tcp": [[gateway, daemon.port]], "http": [url], "paths": []})
    # The connection is made (no firewall), and faasd closes it without a word.
    assert result["tcp"][f"{gateway}:{daemon.port}"] == "connected", result
    assert result["http"][url].startswith("error:"), result["http"]
    # The host still gets its answers on that address.
    assert requests.get(url, timeout=10).status_code == 200
    # And a function that must be sealed off is not run without the firewall.
    daemon.create_function("sealed", "python", PROBE_PY, filename="probe.py", network="none")
    refused = requests.post(f"{daemon.url}/function/sealed", json={"tcp": [], "paths": []}, timeout=60)
    assert refused.status_code == 503, refused.text
    assert "firewall" in refused.json()["error"]["message"]


def test_a_flushed_firewall_is_put_back(exposed: FaasdProcess) -> None:
    """A firewall reload that drops faasd's jumps is noticed and repaired while faasd runs."""
    in_chain = HostFirewall(exposed.owner).in_chain
    jumps = [line for line in iptables_rules("INPUT").splitlines() if line.endswith(f"-j {in_chain}")]
    assert len(jumps) == 1, jumps
    subprocess.run(["iptables", "-w", "10", *jumps[0].replace("-A", "-D", 1).split()], check=True)
    assert f"-j {in_chain}" not in iptables_rules("INPUT")
    wait_for(lambda: f"-j {in_chain}" in iptables_rules("INPUT"), "faasd to put its firewall back", timeout=60)
    assert exposed.status()["isolation"]["firewall"]["active"] is True


def test_a_stale_seal_is_swept_at_start(start_faasd: Callable[..., FaasdProcess]) -> None:
    """A network-none rule left by a faasd killed for good must not cut off a later container."""
    chain = "FAASD-OUT-TESTSTALE01"
    rule = ["-s", "192.0.2.7", "-m", "comment", "--comment", "faasd:0123456789ab", "-j", "REJECT"]
    subprocess.run(["iptables", "-w", "10", "-N", chain], check=True)
    try:
        subprocess.run(["iptables", "-w", "10", "-A", chain, *rule], check=True)
        assert "faasd:0123456789ab" in iptables_rules(chain)
        start_faasd(default_poolsize=0)
        assert "faasd:0123456789ab" not in iptables_rules(chain)
    finally:
        subprocess.run(["iptables", "-w", "10", "-F", chain], check=False)
        subprocess.run(["iptables", "-w", "10", "-X", chain], check=False)


# -- a function on a user's network -------------------------------------------------------

# Like PROBE_PY, but a target may name the source address to send from (the function's
# address on faasd's network, through the user network's interface, say).
NET_PROBE_PY = """import socket
from concurrent.futures import ThreadPoolExecutor


def attempt(target):
    host, port, source = target
    s = socket.socket()
    s.settimeout(2)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return "error: " + str(e)
    finally:
        s.close()


def main(context):
    plan = context.request.json()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, plan["tcp"]))
    return {
        "self": socket.gethostbyname(socket.gethostname()),
        "tcp": {f"{h}:{p}" + (f" from {s}" if s else ""): r for (h, p, s), r in zip(plan["tcp"], results)},
    }
"""

SERVICE_PORT = 8000
TEST_LABEL = {"faasd.test": "isolation-user-network"}
BLOCKED = ("refused", "timeout")


@pytest.fixture
def user_network(engine: docker.DockerClient) -> Iterator[dict[str, Any]]:
    """A user's bridge network with a service on it (alias ``svc``, port 8000) that faasd does not own.

    Named to sort before "faasd", so a function's default route moves to this network's bridge
    (Docker picks the gateway by network name): the harder case for the host rules.
    """
    name = f"apps-faasdtest-{os.getpid()}"
    network = engine.api.create_network(name, driver="bridge", labels=TEST_LABEL, check_duplicate=True)
    service = None
    try:
        service = engine.api.create_container(
            "faasd/runtime-python:latest",
            entrypoint=["python3", "-m", "http.server", str(SERVICE_PORT)],
            user="1000:1000",
            labels=TEST_LABEL,
            name=f"faasdtest-svc-{os.getpid()}",
            host_config=engine.api.create_host_config(network_mode=name),
            networking_config=engine.api.create_networking_config(
                {name: engine.api.create_endpoint_config(aliases=["svc"])}
            ),
        )
        engine.api.start(service["Id"])
        address = engine.api.inspect_container(service["Id"])["NetworkSettings"]["Networks"][name]["IPAddress"]

        def listening() -> bool:
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex((address, SERVICE_PORT)) == 0

        wait_for(listening, "the service on the user network", timeout=20)
        attrs = engine.api.inspect_network(network["Id"])
        yield {
            "name": name,
            "id": network["Id"],
            "bridge": "br-" + network["Id"][:12],
            "gateway": attrs["IPAM"]["Config"][0]["Gateway"],
            "service": service["Id"],
            "service_address": address,
        }
    finally:
        if service is not None:
            with contextlib.suppress(docker.errors.NotFound):
                engine.api.remove_container(service["Id"], force=True)

        def removed() -> bool:
            try:
                engine.api.remove_network(network["Id"])
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError:
                return False  # faasd's containers are still being removed
            return True

        wait_for(removed, f"network {name} to be removable", timeout=60, every=0.5)


def _function_container(engine: docker.DockerClient, daemon: FaasdProcess, faasd_address: str) -> dict[str, Any]:
    """The inspect document of the daemon's container that has ``faasd_address`` on faasd's network."""
    for ref in daemon.containers():
        attrs = engine.api.inspect_container(ref.id)
        if attrs["NetworkSettings"]["Networks"].get("faasd", {}).get("IPAddress") == faasd_address:
            return dict(attrs)
    raise AssertionError(f"no container of this faasd has address {faasd_address}")


def test_a_function_on_a_user_network_reaches_its_services_and_nothing_else_there(
    user_network: dict[str, Any],  # before start_faasd: it goes after faasd's containers
    start_faasd: Callable[..., FaasdProcess],
    engine: docker.DockerClient,
    host_listener: int,
    outside: tuple[str, int],
) -> None:
    net, gateway, service = user_network["name"], user_network["gateway"], user_network["service_address"]
    daemon = start_faasd(default_poolsize=1)
    for name in ("a", "b"):
        created = daemon.create_function(name, "python", NET_PROBE_PY, filename="probe.py", network=net)
        assert created["network"] == net
    daemon.create_function("home", "python", NET_PROBE_PY, filename="probe.py")
    # B runs first: its container and its address on the user network are the target.
    b_home = probe(daemon, "b", {"tcp": []})["self"]
    b = _function_container(engine, daemon, b_home)
    b_address = b["NetworkSettings"]["Networks"][net]["IPAddress"]
    a_home = probe(daemon, "a", {"tcp": []})["self"]
    a = _function_container(engine, daemon, a_home)
    assert a["Id"] != b["Id"] and b_address
    assert daemon.status()["isolation"]["user_networks"] == {net: 2}

    plan = {
        "tcp": [
            ["svc", SERVICE_PORT, None],
            [service, SERVICE_PORT, None],
            [b_address, 8888, None],
            [b_address, 8888, a_home],
            [gateway, host_listener, None],
            [gateway, 22, None],
            # From its address on faasd's network, out of its interface on the user network.
            [gateway, host_listener, a_home],
            [outside[0], outside[1], None],
        ]
    }
    result = probe(daemon, "a", plan)["tcp"]
    assert result[f"svc:{SERVICE_PORT}"] == "connected", result
    assert result[f"{service}:{SERVICE_PORT}"] == "connected", result
    assert result[f"{b_address}:8888"] in BLOCKED, result
    assert result[f"{b_address}:8888 from {a_home}"] in BLOCKED, result
    assert result[f"{gateway}:{host_listener}"] in BLOCKED, result
    assert result[f"{gateway}:22"] in BLOCKED, result
    assert result[f"{gateway}:{host_listener} from {a_home}"] in BLOCKED, result
    # Beyond the machine still, although its default route is now through the user network.
    assert result[f"{outside[0]}:{outside[1]}"] == "connected", result

    # The service cannot open a connection to a function either.
    dial = (
        "import socket\ns = socket.socket()\ns.settimeout(2)\n"
        f"try:\n    s.connect(('{b_address}', 8888)); print('connected')\n"
        "except ConnectionRefusedError:\n    print('refused')\n"
        "except OSError as e:\n    print('timeout' if 'timed out' in str(e) else e)\n"
    )
    dialed = engine.containers.get(user_network["service"]).exec_run(["python3", "-c", dial])
    assert dialed.output.decode().strip() in BLOCKED, dialed.output

    # A function on the default network is not on the user network at all.
    home = probe(daemon, "home", {"tcp": [["svc", SERVICE_PORT, None], [service, SERVICE_PORT, None]]})["tcp"]
    assert home[f"{service}:{SERVICE_PORT}"] in BLOCKED, home
    assert home[f"svc:{SERVICE_PORT}"] != "connected", home

    # The rules are tagged with the containers, and go with them (the bridge's jumps with the last).
    firewall = HostFirewall(daemon.owner)
    tags = [f"faasd:{container['Id'][:12]}" for container in (a, b)]
    for tag in tags:
        assert tag in iptables_rules(firewall.out_chain)
        assert tag in iptables_rules(firewall.netin_chain)
    assert f"-i {user_network['bridge']} -j {firewall.netin_chain}" in iptables_rules("INPUT")
    for name in ("a", "b"):
        daemon.api("DELETE", f"/v1/functions/{name}?force=true")

    def rules_gone() -> bool:
        everything = subprocess.run(["iptables", "-w", "10", "-S"], capture_output=True, text=True, check=True).stdout
        jumps = [
            line
            for line in everything.splitlines()
            if user_network["bridge"] in line and (firewall.out_chain in line or firewall.netin_chain in line)
        ]
        return not any(tag in everything for tag in tags) and not jumps

    wait_for(rules_gone, "the user network rules to go with their containers")
    assert daemon.status()["isolation"]["user_networks"] == {}


def test_a_user_network_must_be_a_network_a_function_may_join(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=0)
    body = {"name": "n", "environment": "python", "code": "def main():\n    return 'x'\n"}
    for bad in ("host", "bridge", "faasd", "bad name!", "-x", "x" * 64, 7):
        refused = daemon.api("POST", "/v1/functions", json={**body, "network": bad})
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]["message"].startswith("network"), refused.text
    daemon.create_function("n", "python", body["code"])
    changed = daemon.api("PATCH", "/v1/functions/n", json={"network": "host"})
    assert changed.status_code == 400 and "network" in changed.text, changed.text

    # A network that does not exist: the function is made, and its calls say what is missing.
    missing = f"faasdtest-missing-{os.getpid()}"
    daemon.ok("PATCH", "/v1/functions/n", json={"network": missing})
    answer = requests.get(f"{daemon.url}/function/n", timeout=60)
    assert answer.status_code == 503, answer.text
    assert missing in answer.json()["error"]["message"]
    assert "does not exist" in answer.json()["error"]["message"]
    wait_for(lambda: daemon.containers() == [], "the refused container to go")


def test_a_user_network_needs_the_firewall(
    user_network: dict[str, Any], start_faasd: Callable[..., FaasdProcess], engine: docker.DockerClient
) -> None:
    own = f"faasd-nofw-net-{os.getpid()}"
    try:
        daemon = start_faasd(firewall="off", default_poolsize=0, network=own)
        daemon.create_function("joined", "python", PROBE_PY, filename="probe.py", network=user_network["name"])
        refused = requests.post(f"{daemon.url}/function/joined", json={"tcp": [], "paths": []}, timeout=60)
        assert refused.status_code == 503, refused.text
        assert "firewall" in refused.json()["error"]["message"]
        assert user_network["name"] in refused.json()["error"]["message"]
        daemon.cleanup()
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            engine.api.remove_network(own)
