"""A custom environment end to end: `faas env create` with the Ruby runtime image
(faasd/runtime-ruby:latest, built by `make images` from runtimes/ruby), a
function of examples/ruby/hello.rb in it, routes, its pool, and the errors of
a bad image. Needs the real engine and the images; they FAIL when missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.harness import ROOT, FaasdProcess, wait_for

pytestmark = pytest.mark.docker

RUBY_IMAGE = "faasd/runtime-ruby:latest"
HELLO_RB = ROOT / "examples" / "ruby" / "hello.rb"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], message: str) -> str:
    """Exit 1 and one line ``error: ...`` that contains ``message``."""
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, f"{message!r} not in {result.stderr!r}"
    return result.stderr


@pytest.fixture
def daemon(start_faasd, engine) -> FaasdProcess:
    try:
        engine.images.get(RUBY_IMAGE)
    except Exception:
        pytest.fail(f"image {RUBY_IMAGE} is missing: run make images")
    return start_faasd(default_poolsize=1)


def ruby_pool_ready(daemon: FaasdProcess) -> int:
    return int(daemon.env_status("ruby")["pool_ready"])


def test_a_ruby_environment_runs_the_example(daemon: FaasdProcess, tmp_path: Path) -> None:
    out = ok(daemon.faas("env", "create", "--name", "ruby", "--image", RUBY_IMAGE, "--poolsize", "1"))
    assert out.strip() == "environment 'ruby' created"
    env = daemon.ok("GET", "/v1/environments/ruby")
    assert (env["image"], env["poolsize"], env["builder"]) == (RUBY_IMAGE, 1, "")
    wait_for(lambda: ruby_pool_ready(daemon) == 1, "the ruby pool to fill", timeout=60)
    assert daemon.env_status("ruby")["last_error"] is None

    # `faas fn create --code`, then a route.
    code = tmp_path / "hello.rb"
    shutil.copy(HELLO_RB, code)
    ok(daemon.faas("fn", "create", "--name", "hello", "--env", "ruby", "--code", str(code)))
    ok(daemon.faas("route", "create", "--url", "/hello", "--function", "hello"))
    r = requests.get(daemon.url + "/hello?name=faasd", timeout=30)
    assert (r.status_code, r.headers["content-type"], r.text) == (200, "text/plain; charset=utf-8", "Hello, faasd!\n")
    r = requests.get(daemon.url + "/hello", params={"format": "json"}, timeout=30)
    assert (r.status_code, r.json()) == (200, {"greeting": "Hello, world!"})
    # The specialization took the pool's container; the pool fills again.
    wait_for(lambda: ruby_pool_ready(daemon) == 1, "the ruby pool to refill", timeout=60)
    logs = ok(daemon.faas("fn", "logs", "--name", "hello"))
    assert "faasd-runtime: ruby 3." in logs and "faasd-runtime: specialized hello.rb (main(context))" in logs

    # `faas deploy` with a route parameter, as examples/ruby/README.md shows it.
    out = ok(daemon.faas("deploy", str(code), "--env", "ruby", "--name", "greet", "--route", "/greet/{name}"))
    assert out.splitlines()[-1] == daemon.url + "/greet/{name}", out
    r = requests.get(daemon.url + "/greet/Ada", timeout=30)
    assert (r.status_code, r.text) == (200, "Hello, Ada!\n")

    # A function of the API without a file name (the file is then called "hi").
    daemon.create_function("hi", "ruby", "def main = { 'hi' => ENV['WHO'] }\n", env={"WHO": "ruby"})
    r = requests.get(daemon.url + "/function/hi", timeout=30)
    assert (r.status_code, r.json()) == (200, {"hi": "ruby"})

    # A function error keeps the contract's shape through faasd.
    daemon.create_function(
        "oops", "ruby", "def main(context)\n  raise ArgumentError, 'nope'\nend\n", filename="oops.rb"
    )
    r = requests.get(daemon.url + "/function/oops", timeout=30)
    assert r.status_code == 500, r.text
    assert r.json()["error"]["message"] == "ArgumentError: nope"
    assert r.json()["error"]["location"] == "oops.rb:2"


def test_a_ready_ruby_deployment_archive_runs_without_a_builder(daemon: FaasdProcess, tmp_path: Path) -> None:
    ok(daemon.faas("env", "create", "--name", "ruby", "--image", RUBY_IMAGE, "--poolsize", "1"))
    deploy = tmp_path / "greeter"
    (deploy / "lib").mkdir(parents=True)
    (deploy / "lib" / "greeting.rb").write_text('module Greeting\n  def self.for(name) = "Hi #{name}"\nend\n')
    (deploy / "main.rb").write_text(
        "require 'lib/greeting'\n\ndef handler(context)\n  Greeting.for(context.request.query['name'])\nend\n"
    )
    # A source archive needs a builder, which the Ruby environment does not have.
    fails(daemon.faas("package", "create", "--env", "ruby", "--src", str(deploy)), "no builder")
    ok(daemon.faas("package", "create", "--env", "ruby", "--deploy", str(deploy), "--name", "greeter"))
    ok(daemon.faas("fn", "create", "--name", "greeter", "--pkg", "greeter", "--entrypoint", "main.handler"))
    r = wait_for(
        lambda: (
            (resp := requests.get(daemon.url + "/function/greeter?name=Ruby", timeout=30)).status_code != 503 and resp
        ),
        "the package's deployment to be ready",
        timeout=60,
    )
    assert (r.status_code, r.text) == (200, "Hi Ruby")


def test_a_bad_image_gives_a_clear_error(daemon: FaasdProcess) -> None:
    fails(
        daemon.faas("env", "create", "--name", "bad", "--image", "Not An Image!", "--poolsize", "1"),
        "is not a valid image reference",
    )
    # A well-formed name that the engine does not have: the environment is kept,
    # and its status says why its pool stays empty.
    ok(daemon.faas("env", "create", "--name", "missing", "--image", "faasd/runtime-nope:latest", "--poolsize", "1"))
    status = wait_for(
        lambda: (env := daemon.env_status("missing"))["last_error"] and env,
        "the missing image to be reported",
        timeout=60,
    )
    assert "faasd/runtime-nope:latest" in status["last_error"], status
    assert "not found" in status["last_error"], status
    assert status["pool_ready"] == 0
