"""Packages: a function loaded from a deployment directory (runtimes/README.md).

The host-run servers get a temporary folder as ``deploy_dir``; the container
tests mount one read-only at /faasd/deploy, as faasd puts a deployment there.
Every deployment carries its dependency the way a builder leaves it: a
pure-Python package next to the code, or node_modules/<dep>/index.js.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .packages import snapshot, write_tree
from .support import DEPLOY_DIR, LANGS, HostRuntime

# ---------------------------------------------------------------- deployments

PYTHON_DEPLOY = {
    "main.py": """import os

import vendored_greeting
from vendored_greeting.words import WORD

PREFIX = os.environ.get("PREFIX", "")


def main():
    return PREFIX + vendored_greeting.greet(request.args.get("name", "world"))


def handler(context):
    return {"word": WORD, "path": context.request.path, "greeting": vendored_greeting.greet("ctx")}


async def slow(context):
    return "async " + vendored_greeting.greet(context.request.method)


def broken(context):
    return vendored_greeting.shout(None)
""",
    # A dependency as `pip install --target` leaves it: a package next to the code.
    "vendored_greeting/__init__.py": """from .words import WORD


def greet(name):
    return f"{WORD}, {name}!"


def shout(text):
    return text.upper()
""",
    "vendored_greeting/words.py": "WORD = 'Hello'\n",
    "pkg/__init__.py": "",
    "pkg/sub/__init__.py": "",
    "pkg/sub/mod.py": """from vendored_greeting import greet


def func(context):
    return greet("pkg " + context.request.query.get("x", ""))
""",
    # A module named like one the runtime itself uses.
    "time.py": "def main():\n    return 'my own time'\n",
}

NODE_DEPLOY = {
    "index.js": """const greeter = require('greeter');
const prefix = process.env.PREFIX || '';
module.exports = async (context) => prefix + greeter.greet(context.request.query.name || 'world');
""",
    "lib/handlers.js": """const greeter = require('greeter');
exports.hello = async (context) => ({word: greeter.WORD, path: context.request.path});
exports.cb = function (context, callback) {
  callback(201, greeter.greet('callback'), {'X-Form': 'callback'});
};
exports.broken = () => greeter.shout(undefined);
exports.notAFunction = 42;
""",
    # A dependency as `npm install` leaves it.
    "node_modules/greeter/index.js": """exports.WORD = 'Hello';
exports.greet = (name) => `${exports.WORD}, ${name}!`;
exports.shout = (text) => text.toUpperCase();
""",
    "node_modules/greeter/package.json": '{"name": "greeter", "version": "1.0.0", "main": "index.js"}\n',
}

# An ES module deployment: package.json says "type": "module"; the dependency is CommonJS.
NODE_ESM_DEPLOY = {
    "package.json": '{"name": "fn", "type": "module"}\n',
    "index.js": """import greeter from 'greeter';
export default async (context) => 'esm ' + greeter.greet(context.request.method);
export const other = () => 'other export';
""",
    "handler.mjs": "export const main = async () => 'mjs main';\n",
    "node_modules/greeter/index.js": NODE_DEPLOY["node_modules/greeter/index.js"],
    "node_modules/greeter/package.json": NODE_DEPLOY["node_modules/greeter/package.json"],
}

DEPLOY = {"nodejs": NODE_DEPLOY, "python": PYTHON_DEPLOY}


def deployment(tmp_path: Path, files: dict[str, str], name: str = "deploy") -> Path:
    return write_tree(tmp_path / name, files)


def specialized(rt: HostRuntime, deploy: Path, entrypoint: str | None, **kw) -> HostRuntime:
    r = rt.specialize_deploy(deploy, entrypoint, **kw)
    assert r.status == 200, (r, rt.output())
    return rt


# ---------------------------------------------------------------- Python


@pytest.mark.parametrize(
    "entrypoint,path,expected",
    [
        (None, "/?name=faasd", "Hello, faasd!"),  # the default: main.main
        ("", "/", "Hello, world!"),
        ("main.main", "/?name=x", "Hello, x!"),
        ("main.handler", "/items/7", {"word": "Hello", "path": "/items/7", "greeting": "Hello, ctx!"}),
        ("handler", "/h", {"word": "Hello", "path": "/h", "greeting": "Hello, ctx!"}),  # a function of main.py
        ("main.slow", "/", "async Hello, GET!"),
        ("pkg.sub.mod.func", "/?x=y", "Hello, pkg y!"),
        ("time.main", "/", "my own time"),
    ],
)
def test_python_package_entrypoints(start_runtime, tmp_path, entrypoint, path, expected):
    deploy = deployment(tmp_path, PYTHON_DEPLOY)
    before = snapshot(deploy)
    rt = specialized(start_runtime("python"), deploy, entrypoint)
    r = rt.get(path)
    assert r.status == 200, r
    assert (r.json() if isinstance(expected, dict) else r.text) == expected
    assert snapshot(deploy) == before, "the runtime wrote into the deployment directory"


def test_python_package_env_label_and_log(start_runtime, tmp_path):
    deploy = deployment(tmp_path, PYTHON_DEPLOY)
    rt = start_runtime("python")
    specialized(rt, deploy, "main.main", env={"PREFIX": ">> "}, filename="greeter-fn")
    assert rt.get("/").text == ">> Hello, world!"
    assert f"specialized greeter-fn (main.main in {deploy}, main())" in rt.output()
    assert rt.specialize_deploy(deploy, "main.main").status == 409


# ---------------------------------------------------------------- Node.js


@pytest.mark.parametrize(
    "entrypoint,path,status,expected",
    [
        (None, "/?name=faasd", 200, "Hello, faasd!"),  # the default: index.js's module.exports
        ("", "/", 200, "Hello, world!"),
        ("index", "/?name=i", 200, "Hello, i!"),
        ("lib/handlers.hello", "/a/b", 200, {"word": "Hello", "path": "/a/b"}),
        ("lib/handlers.js.hello", "/c", 200, {"word": "Hello", "path": "/c"}),
        ("lib/handlers.cb", "/", 201, "Hello, callback!"),
    ],
)
def test_node_package_entrypoints(start_runtime, tmp_path, entrypoint, path, status, expected):
    deploy = deployment(tmp_path, NODE_DEPLOY)
    before = snapshot(deploy)
    rt = specialized(start_runtime("nodejs"), deploy, entrypoint)
    r = rt.get(path)
    assert r.status == status, r
    assert (r.json() if isinstance(expected, dict) else r.text) == expected
    assert snapshot(deploy) == before, "the runtime wrote into the deployment directory"


@pytest.mark.parametrize(
    "entrypoint,expected",
    [
        ("", "esm Hello, GET!"),
        ("index", "esm Hello, GET!"),
        ("index.other", "other export"),
        ("handler.main", "mjs main"),
    ],
)
def test_node_package_esm(start_runtime, tmp_path, entrypoint, expected):
    deploy = deployment(tmp_path, NODE_ESM_DEPLOY)
    before = snapshot(deploy)
    rt = specialized(start_runtime("nodejs"), deploy, entrypoint)
    r = rt.get("/")
    assert (r.status, r.text) == (200, expected), r
    assert snapshot(deploy) == before


def test_node_package_mjs_without_package_json(start_runtime, tmp_path):
    deploy = deployment(tmp_path, {"fn.mjs": "export default () => 'plain mjs';\n"})
    rt = specialized(start_runtime("nodejs"), deploy, "fn")
    assert rt.get("/").text == "plain mjs"


def test_node_package_json_main_is_the_default(start_runtime, tmp_path):
    files = {**NODE_DEPLOY, "package.json": '{"name": "fn", "main": "lib/main.js"}\n'}
    files["lib/main.js"] = "module.exports = () => 'from package.json main';\n"
    rt = specialized(start_runtime("nodejs"), deployment(tmp_path, files), "")
    assert rt.get("/").text == "from package.json main"


def test_node_package_env_and_label(start_runtime, tmp_path):
    deploy = deployment(tmp_path, NODE_DEPLOY)
    rt = start_runtime("nodejs")
    specialized(rt, deploy, "", env={"PREFIX": ">> "}, filename="greeter-fn")
    assert rt.get("/").text == ">> Hello, world!"
    assert f"specialized greeter-fn (index in {deploy}, return form)" in rt.output()


# ---------------------------------------------------------------- errors (both)

# lang -> kind -> (entrypoint, message, location)
MISSING = {
    "python": {
        "function": (
            "main.nope",
            "EntrypointError: module 'main' has no function 'nope' (entrypoint main.nope)",
            "main.py",
        ),
        "module": (
            "nomod.main",
            "EntrypointError: no module 'nomod' in the deployment (entrypoint nomod.main)",
            "nomod.py",
        ),
        "submodule": (
            "pkg.sub.nope.func",
            "EntrypointError: no module 'pkg.sub.nope' in the deployment (entrypoint pkg.sub.nope.func)",
            "pkg/sub/nope.py",
        ),
        "not_a_function": (
            "vendored_greeting.words.WORD",
            "EntrypointError: 'WORD' in module 'vendored_greeting.words' is a str, not a function "
            "(entrypoint vendored_greeting.words.WORD)",
            "vendored_greeting/words.py",
        ),
    },
    "nodejs": {
        "function": (
            "lib/handlers.nope",
            "EntrypointError: lib/handlers.js has no function export 'nope' (entrypoint lib/handlers.nope)",
            "lib/handlers.js",
        ),
        "module": (
            "nofile.main",
            "EntrypointError: no file 'nofile' in the deployment (entrypoint nofile.main)",
            "nofile",
        ),
        "submodule": (
            "lib/nope.main",
            "EntrypointError: no file 'lib/nope' in the deployment (entrypoint lib/nope.main)",
            "lib/nope",
        ),
        "not_a_function": (
            "lib/handlers.notAFunction",
            "EntrypointError: lib/handlers.js has no function export 'notAFunction' "
            "(entrypoint lib/handlers.notAFunction)",
            "lib/handlers.js",
        ),
    },
}


@pytest.mark.parametrize("kind", ["function", "module", "submodule", "not_a_function"])
@pytest.mark.parametrize("lang", LANGS)
def test_package_missing_entrypoint_is_load_error(start_runtime, tmp_path, lang, kind):
    deploy = deployment(tmp_path, DEPLOY[lang])
    entrypoint, message, location = MISSING[lang][kind]
    rt = start_runtime(lang)
    r = rt.specialize_deploy(deploy, entrypoint)
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "load_error"
    assert message in err["message"], err
    assert err["location"] == location
    assert str(deploy) not in r.text  # paths are relative to the deployment
    # Broken for good: every call answers the same; a new specialization is refused.
    assert rt.get("/").json() == {"error": err}
    assert rt.specialize_deploy(deploy, "").status == 409


def test_python_package_entrypoint_listing_and_default(start_runtime, tmp_path):
    rt = start_runtime("python")
    r = rt.specialize_deploy(deployment(tmp_path, {"other.py": "def f():\n    return 1\n"}), "")
    err = r.json()["error"]
    assert (r.status, err["location"]) == (500, "main.py")
    assert err["message"] == "EntrypointError: no module 'main' in the deployment (entrypoint main.main)"
    rt = start_runtime("python")
    r = rt.specialize_deploy(deployment(tmp_path, PYTHON_DEPLOY, "d2"), "main.nope")
    assert r.json()["error"]["message"].endswith("functions defined: broken, handler, main, slow")


def test_node_package_default_missing(start_runtime, tmp_path):
    rt = start_runtime("nodejs")
    r = rt.specialize_deploy(deployment(tmp_path, {"other.js": "module.exports = () => 1;\n"}), "")
    err = r.json()["error"]
    assert (r.status, err["code"], err["location"]) == (500, "load_error", "index.js")
    assert err["message"].startswith("EntrypointError: no index.js")


# Errors in the deployment's code are located in its files: lang -> (files, entrypoint, type, location).
CODE_ERRORS = {
    "python": {
        "syntax": (
            {"pkg/__init__.py": "", "pkg/bad.py": "x = 1\ndef main(:\n"},
            "pkg.bad.main",
            "SyntaxError",
            "pkg/bad.py:2",
        ),
        "missing_dependency": (
            {"main.py": "import os\nimport not_vendored_faasd\n\ndef main():\n    return 1\n"},
            "main.main",
            "ModuleNotFoundError",
            "main.py:2",
        ),
        "top_level_throw": (
            {"lib/__init__.py": "", "lib/conf.py": "a = 1\nraise RuntimeError('bad config')\n"},
            "lib.conf.main",
            "RuntimeError",
            "lib/conf.py:2",
        ),
    },
    "nodejs": {
        "syntax": ({"lib/bad.js": "const a = 1;\nconst b = ;\n"}, "lib/bad.main", "SyntaxError", "lib/bad.js:2"),
        "missing_dependency": (
            {"index.js": "const a = 1;\nconst x = require('not-vendored-faasd');\nmodule.exports = () => x;\n"},
            "",
            "Error [MODULE_NOT_FOUND]",
            "index.js:2",
        ),
        "top_level_throw": (
            {"lib/conf.js": "const a = 1;\nthrow new RangeError('bad config');\n"},
            "lib/conf",
            "RangeError",
            "lib/conf.js:2",
        ),
        "esm_syntax": (
            {
                "package.json": '{"type": "module"}',
                "index.js": "const a = 1;\n\nexport default (c) => {\n  return (;\n};\n",
            },
            "",
            "SyntaxError",
            "index.js:4",
        ),
        "esm_missing_dependency": (
            {"lib/fn.mjs": "import x from 'not-vendored-faasd';\nexport default () => x;\n"},
            "lib/fn",
            "Error [ERR_MODULE_NOT_FOUND]",
            "lib/fn.mjs",  # Node gives no line for it
        ),
    },
}


@pytest.mark.parametrize(
    "lang,kind", [pytest.param(lang, kind, id=f"{lang}-{kind}") for lang in LANGS for kind in sorted(CODE_ERRORS[lang])]
)
def test_package_code_errors_are_located(start_runtime, tmp_path, lang, kind):
    files, entrypoint, etype, location = CODE_ERRORS[lang][kind]
    deploy = deployment(tmp_path, files)
    r = start_runtime(lang).specialize_deploy(deploy, entrypoint, filename="label")
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "load_error"
    assert err["message"].startswith(etype + ": "), err
    assert err["location"] == location
    if ":" in location:
        assert err["message"].endswith(f"({location})")
    assert str(deploy) not in r.text


@pytest.mark.parametrize("lang", LANGS)
def test_package_function_error_in_dependency_is_located(start_runtime, tmp_path, lang):
    deploy = deployment(tmp_path, DEPLOY[lang])
    entrypoint = {"python": "main.broken", "nodejs": "lib/handlers.broken"}[lang]
    rt = specialized(start_runtime(lang), deploy, entrypoint)
    r = rt.get("/")
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "function_error"
    assert (
        err["location"]
        == {"python": "vendored_greeting/__init__.py:9", "nodejs": "node_modules/greeter/index.js:3"}[lang]
    )
    assert str(deploy) not in r.text


@pytest.mark.parametrize("lang", LANGS)
def test_package_bad_deploy_dir_is_400(start_runtime, tmp_path, lang):
    deploy = deployment(tmp_path, DEPLOY[lang])
    a_file = deploy / ("main.py" if lang == "python" else "index.js")
    rt = start_runtime(lang)
    for doc in (
        {"deploy_dir": str(tmp_path / "no-such-deployment")},
        {"deploy_dir": str(a_file)},  # not a directory
        {"deploy_dir": "relative/deploy"},
        {"deploy_dir": ""},
        {"deploy_dir": 42},
        {"deploy_dir": str(deploy), "code": "x"},  # a package or one file, not both
        {"deploy_dir": str(deploy), "filename": 7},
    ):
        r = rt.specialize_deploy(doc.pop("deploy_dir"), extra=doc)  # type: ignore[arg-type]
        assert r.status == 400, (doc, r)
        assert r.json()["error"]["code"] == "bad_request"
    r = rt.specialize_deploy(tmp_path / "no-such-deployment", "")
    assert "is not a directory" in r.json()["error"]["message"]
    # Still generic: a valid specialization works afterwards.
    specialized(rt, deploy, "")
    assert rt.get("/").status == 200


# ---------------------------------------------------------------- in the images

SANDBOXED = {
    "python": (
        "probe.main",
        {
            "probe.py": """import errno, os, sys

import vendored_greeting


def main():
    try:
        open(os.path.join(os.path.dirname(__file__), "written"), "w").close()
        wrote = "written"
    except OSError as e:
        wrote = errno.errorcode.get(e.errno, str(e.errno))
    return {"greeting": vendored_greeting.greet("container"), "write": wrote, "uid": os.getuid(),
            "bytecode": sorted(d for d in os.listdir(os.path.dirname(__file__)) if d == "__pycache__")}
""",
            "vendored_greeting/__init__.py": PYTHON_DEPLOY["vendored_greeting/__init__.py"],
            "vendored_greeting/words.py": PYTHON_DEPLOY["vendored_greeting/words.py"],
        },
    ),
    "nodejs": (
        "probe.main",
        {
            "probe.js": """const fs = require('fs');
const path = require('path');
const greeter = require('greeter');
exports.main = () => {
  let wrote = 'written';
  try { fs.writeFileSync(path.join(__dirname, 'written'), 'x'); } catch (e) { wrote = e.code; }
  return {greeting: greeter.greet('container'), write: wrote, uid: process.getuid(), bytecode: []};
};
""",
            "node_modules/greeter/index.js": NODE_DEPLOY["node_modules/greeter/index.js"],
        },
    ),
}


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_container_package_from_read_only_deploy_dir(start_container, tmp_path, lang):
    entrypoint, files = SANDBOXED[lang]
    deploy = deployment(tmp_path, files)
    before = snapshot(deploy)
    rt = start_container(lang, deploy=deploy)
    r = rt.specialize_deploy(DEPLOY_DIR, entrypoint, filename="probe")
    assert r.status == 200, (r, rt.container.logs().decode(errors="replace"))  # type: ignore[attr-defined]
    r = rt.get("/")
    assert r.status == 200, r
    assert r.json() == {"greeting": "Hello, container!", "write": "EROFS", "uid": 1000, "bytecode": []}
    assert snapshot(deploy) == before


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_container_package_errors(start_container, tmp_path, lang):
    deploy = deployment(tmp_path, DEPLOY[lang])
    entrypoint, message, location = MISSING[lang]["function"]
    rt = start_container(lang, deploy=deploy)
    r = rt.specialize_deploy(DEPLOY_DIR, entrypoint)
    assert r.status == 500, r
    err = r.json()["error"]
    assert (err["code"], err["location"]) == ("load_error", location)
    assert message in err["message"]
    assert DEPLOY_DIR not in r.text
    other = start_container(lang)  # nothing at /faasd/deploy
    r = other.specialize_deploy(DEPLOY_DIR, "")
    assert (r.status, r.json()["error"]["code"]) == (400, "bad_request")
