"""`faas dev` on the real engine: deploy, redeploy on save, Ctrl-C takes back what it made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for
from tests.integration.test_packages import python_source

pytestmark = pytest.mark.docker

ANSWER_TIMEOUT = 30.0  # the new code's answer after a save, at most (the target is under one second)
REBUILD_TIMEOUT = 120.0  # a changed manifest: the builder container installs the dependencies again
EXIT_TIMEOUT = 30.0


class DevProcess:
    """`faas dev ...` running against ``daemon``, its output collected line by line."""

    def __init__(self, daemon: FaasdProcess, cwd: Path, *args: str) -> None:
        env = {**os.environ, "FAAS_URL": daemon.url, "FAAS_TOKEN": daemon.token, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faas_cli", "dev", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def line_with(self, *words: str, timeout: float = ANSWER_TIMEOUT) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"faas dev exited with {self.proc.returncode}:\n{self.output}")
            return next((line for line in self.lines if all(word in line for word in words)), None)

        return wait_for(found, f"a line with {words!r} from faas dev", timeout=timeout)

    def interrupt(self) -> int:
        """Ctrl-C: its exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stuck = f"faas dev did not stop within {EXIT_TIMEOUT:.0f} s of SIGINT"
            raise AssertionError(f"{stuck}:\n{self.output}") from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def answers(daemon: FaasdProcess, path: str, expected: str, timeout: float = ANSWER_TIMEOUT) -> float:
    """Poll GET ``path`` until it answers ``expected``; the seconds it took."""
    began = time.monotonic()
    last: list[str] = []

    def check() -> bool:
        try:
            response = requests.get(daemon.url + path, timeout=10)
        except requests.RequestException as error:
            last[:] = [repr(error)]
            return False
        last[:] = [f"{response.status_code} {response.text[:200]!r}"]
        return response.status_code == 200 and response.text == expected

    wait_for(check, f"GET {path} to answer {expected!r} (last: {last})", timeout=timeout, every=0.02)
    return time.monotonic() - began


def gone(daemon: FaasdProcess, name: str) -> None:
    assert daemon.api("GET", f"/v1/functions/{name}").status_code == 404
    assert daemon.ok("GET", f"/v1/triggers/http?function={name}")["items"] == []
    assert daemon.api("GET", f"/v1/packages/{name}").status_code == 404


def test_a_package_folder_is_redeployed_on_save_and_taken_back_on_ctrl_c(faasd: FaasdProcess, tmp_path: Path) -> None:
    folder = python_source(tmp_path / "devshop", greeting="v1")
    dev = DevProcess(faasd, tmp_path, "devshop", "--env", "python")
    try:
        dev.line_with("ready", "answered 200")
        assert f"{faasd.url}/devshop" in dev.output
        answers(faasd, "/devshop?name=Ada", "Hello, Ada, from greet 1.0 v1")

        # A change of code alone: no builder, the new code answers soon after the save.
        (folder / "main.py").write_text((folder / "main.py").read_text().replace("v1", "v2"))
        took = answers(faasd, "/devshop?name=Ada", "Hello, Ada, from greet 1.0 v2")
        line = dev.line_with("deploy", "main.py: code only (dependencies reused)")
        assert "the new code answered 200 OK" in line and "after the save" in line, line
        assert took < ANSWER_TIMEOUT

        # A save that changes nothing (the same bytes) redeploys nothing; an editor's swap file neither.
        (folder / "main.py").write_text((folder / "main.py").read_text())
        (folder / ".main.py.swp").write_bytes(b"\0swap")
        time.sleep(1.0)
        assert sum("main.py:" in line for line in dev.lines) == 1, dev.output

        # A changed manifest: the dependencies are installed again (offline: a wheel in the source).
        (folder / "requirements.txt").write_text((folder / "requirements.txt").read_text() + "# again\n")
        dev.line_with("deploy", "requirements.txt: rebuilt (dependencies installed)", timeout=REBUILD_TIMEOUT)
        answers(faasd, "/devshop?name=Ada", "Hello, Ada, from greet 1.0 v2")

        # A call of the user's is shown with its status class.
        requests.get(faasd.url + "/devshop", timeout=10)
        dev.line_with(" call ", "2xx")

        assert dev.interrupt() == 0, dev.output
    finally:
        dev.kill()
    assert "function 'devshop' deleted with its route" in dev.output
    assert "package 'devshop' deleted" in dev.output
    gone(faasd, "devshop")


def test_a_file_with_a_syntax_error_says_so_and_the_loop_goes_on(faasd: FaasdProcess, tmp_path: Path) -> None:
    file = tmp_path / "devhello.py"
    file.write_text('def main():\n    print("called v1")\n    return "v1"\n')
    dev = DevProcess(faasd, tmp_path, "devhello.py", "--env", "python")
    try:
        dev.line_with("ready", "answered 200")
        answers(faasd, "/devhello", "v1")
        dev.line_with(" log ", "called v1")  # the function's own log line, streamed

        file.write_text("def main(:\n")
        line = dev.line_with("error", "devhello.py", "load error: SyntaxError")
        assert "(devhello.py:1)" in line, line

        file.write_text('def main():\n    return "v2"\n')
        answers(faasd, "/devhello", "v2")
        dev.line_with("deploy", "devhello.py: code only (revision 3)", "answered 200 OK")

        assert dev.interrupt() == 0, dev.output
    finally:
        dev.kill()
    gone(faasd, "devhello")


def test_a_function_that_existed_before_is_left_running_its_last_code(faasd: FaasdProcess, tmp_path: Path) -> None:
    faasd.create_function("devkept", "python", 'def main():\n    return "before"\n')
    file = tmp_path / "devkept.py"
    file.write_text('def main():\n    return "during"\n')
    dev = DevProcess(faasd, tmp_path, str(file))  # no --env: it exists
    try:
        dev.line_with("ready", "answered 200")
        answers(faasd, "/devkept", "during")  # the route faas dev made
        assert dev.interrupt() == 0, dev.output
    finally:
        dev.kill()
    assert "existed before faas dev: left as it is now" in dev.output
    assert faasd.ok("GET", "/v1/triggers/http?function=devkept")["items"] == []
    response = requests.get(f"{faasd.url}/function/devkept", timeout=30)
    assert response.text == "during"
    faasd.ok("DELETE", "/v1/functions/devkept?force=true")
