"""The built runtime images, started briefly as containers.

Needs a running Docker engine and the images from `faasd images build`
(make images); when either is missing the tests FAIL (they do not skip).
"""

from __future__ import annotations

import json
import statistics
import time

import pytest

from .support import LANGS, TOKEN_ENV

pytestmark = pytest.mark.docker

HELLO = {
    "nodejs": ("hello.js", "module.exports = async (context) => 'hello ' + context.request.path;\n"),
    "python": ("hello.py", "def main(context):\n    return 'hello ' + context.request.path\n"),
}
SANDBOX = {
    "nodejs": (
        "sandbox.js",
        """
const fs = require('fs');
module.exports = () => {
  let app = 'writable';
  try { fs.writeFileSync('/app/x', 'x'); } catch (e) { app = e.code; }
  fs.writeFileSync('/tmp/probe', 'ok');
  return {uid: process.getuid(), app, tmp: fs.readFileSync('/tmp/probe', 'utf8'),
          version: process.version};
};
""",
    ),
    "python": (
        "sandbox.py",
        """
import errno, os, sys

def main():
    app = "writable"
    try:
        open("/app/x", "w").close()
    except OSError as e:
        app = errno.errorcode.get(e.errno, str(e.errno))
    with open("/tmp/probe", "w") as f:
        f.write("ok")
    return {"uid": os.getuid(), "app": app, "tmp": open("/tmp/probe").read(),
            "version": sys.version.split()[0]}
""",
    ),
}
BROKEN = {
    "nodejs": ("broken.js", "const a = 1;\nmodule.exports = () => {\n  return a +;\n};\n", 3),
    "python": ("broken.py", "a = 1\n\ndef main():\n    return a +\n", 4),
}


@pytest.mark.parametrize("lang", LANGS)
def test_container_specialize_and_call(start_container, lang):
    latencies = []
    for _ in range(3):
        rt = start_container(lang)
        filename, code = HELLO[lang]
        t0 = time.perf_counter()
        s = rt.specialize(filename, code)
        r = rt.get("/first")
        latencies.append((time.perf_counter() - t0) * 1000)
        assert s.status == 200, s
        assert (r.status, r.text) == (200, "hello /first")
        assert rt.get("/healthz").body == b"ok"
        assert rt.specialize(filename, code).status == 409
        # The engine ships container output asynchronously: poll, bounded.
        deadline = time.monotonic() + 5
        while f"specialized {filename}" not in (logs := rt.container.logs().decode()):
            assert time.monotonic() < deadline, f"no specialization line in the log: {logs}"
            time.sleep(0.02)
    print(
        f"\n{lang}: specialize + first call in a container: "
        f"median {statistics.median(latencies):.1f} ms ({', '.join(f'{x:.1f}' for x in latencies)})"
    )


@pytest.mark.parametrize("lang", LANGS)
def test_container_sandbox(start_container, lang):
    rt = start_container(lang)
    filename, code = SANDBOX[lang]
    assert rt.specialize(filename, code).status == 200
    r = rt.get("/")
    assert r.status == 200, r
    doc = r.json()
    assert doc["uid"] == 1000
    assert doc["app"] in ("EROFS", "EACCES")
    assert doc["tmp"] == "ok"
    print(f"\n{lang}: {json.dumps(doc)}")


@pytest.mark.parametrize("lang", LANGS)
def test_container_load_error(start_container, lang):
    rt = start_container(lang)
    filename, code, line = BROKEN[lang]
    r = rt.specialize(filename, code)
    assert r.status == 500
    err = r.json()["error"]
    assert err["code"] == "load_error"
    assert err["message"].startswith("SyntaxError: ")
    assert err["location"] == f"{filename}:{line}"
    assert err["message"].endswith(f"({filename}:{line})")
    assert rt.get("/").json() == {"error": err}
    assert rt.get("/healthz").status == 200


def test_container_node_esm(start_container):
    rt = start_container("nodejs")
    r = rt.specialize("hello.mjs", "export default async (c) => ({status: 201, body: {ok: true}});")
    assert r.status == 200, r
    r = rt.get("/")
    assert (r.status, r.json()) == (201, {"ok": True})


ENVIRON = {
    "nodejs": (
        "environ.js",
        """
const { execFileSync } = require('child_process');
module.exports = () => {
  console.log(JSON.stringify(process.env));
  const child = execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify(process.env))']);
  return {env: process.env, child: JSON.parse(child)};
};
""",
    ),
    "python": (
        "environ.py",
        """
import json, os, subprocess, sys

def main():
    print(dict(os.environ))
    child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                           capture_output=True, check=True, text=True).stdout
    return {"env": dict(os.environ), "child": json.loads(child)}
""",
    ),
}


@pytest.mark.parametrize("lang", LANGS)
def test_container_specialization_token(start_container, lang):
    rt = start_container(lang)
    filename, code = ENVIRON[lang]
    for token in (None, "wrong", rt.token + "x"):
        r = rt.specialize(filename, code, token=token)
        assert r.status == 401, r
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert rt.get("/").json()["error"]["code"] == "not_specialized"
    assert rt.specialize(filename, code).status == 200
    r = rt.get("/")
    assert r.status == 200, r
    doc = r.json()
    for env in (doc["env"], doc["child"]):
        assert TOKEN_ENV not in env
        assert rt.token not in json.dumps(env)
    assert rt.token not in rt.container.logs().decode(errors="replace")


@pytest.mark.parametrize("lang", LANGS)
def test_container_without_token_is_open(start_container, lang):
    rt = start_container(lang, token=None)
    filename, code = HELLO[lang]
    assert rt.specialize(filename, code).status == 200
    assert rt.get("/x").text == "hello /x"


NON_ASCII = {
    "nodejs": ("accents.js", "// caf\u00e9 \u2603\nmodule.exports = () => 'caf\u00e9 \u2603';\n"),
    "python": ("accents.py", "# caf\u00e9 \u2603\ndef main():\n    return 'caf\u00e9 \u2603'\n"),
}


@pytest.mark.parametrize("lang", LANGS)
def test_container_non_ascii_source(start_container, lang):
    rt = start_container(lang)
    filename, code = NON_ASCII[lang]
    assert rt.specialize(filename, code).status == 200
    r = rt.get("/")
    assert (r.status, r.text) == (200, "caf\u00e9 \u2603")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
