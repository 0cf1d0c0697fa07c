"""The runtimes speak Fission's environment protocol (issue 15), when started without a token.

Fission's fetcher puts the code in /userfunc (here: FAASD_USERFUNC_DIR, a tmp
dir) and specializes with ``POST /specialize`` (v1, no body, the file
``user``) or ``POST /v2/specialize`` ``{"filepath", "functionName"}``. Then
every request goes to the function. With faasd's token in the container's
environment, Fission's body is refused and faasd's own works as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .support import LANGS

PY_HELLO = 'def main():\n    return "hello from " + request.path\n'
PY_HELLO_CTX = "def handler(context):\n    return {'who': 'handler', 'method': context.request.method}\n"
JS_HELLO = "module.exports = async (context) => 'hello from ' + context.request.path;\n"
JS_HANDLER = "exports.handler = async (context) => ({ who: 'handler', method: context.request.method });\n"


def fission_v2(rt: Any, filepath: Path | str, function_name: str = "") -> Any:
    """POST /v2/specialize as Fission's fetcher sends it (no Authorization header)."""
    doc = {"filepath": str(filepath), "functionName": function_name, "url": ""}
    return rt.request("POST", "/v2/specialize", json.dumps(doc), {"Content-Type": "application/json"})


@pytest.fixture
def userfunc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The /userfunc of Fission's fetcher: a tmp dir the runtime is pointed at."""
    d = tmp_path / "userfunc"
    d.mkdir()
    d.chmod(0o755)
    monkeypatch.setenv("FAASD_USERFUNC_DIR", str(d))
    return d


@pytest.mark.parametrize("lang", LANGS)
def test_v1_specialize_loads_userfunc_user(lang: str, userfunc: Path, start_runtime: Any) -> None:
    (userfunc / "user").write_text(PY_HELLO if lang == "python" else JS_HELLO)
    rt = start_runtime(lang, token=None)
    r = rt.request("POST", "/specialize")
    assert r.status == 200, r
    assert r.json()["status"] == "specialized"
    r = rt.get("/any/path")
    assert (r.status, r.text) == (200, "hello from /any/path")
    r = rt.request("POST", "/")
    assert (r.status, r.text) == (200, "hello from /")
    again = rt.request("POST", "/specialize")
    assert again.status == 409 and again.json()["error"]["code"] == "already_specialized"


@pytest.mark.parametrize("lang", LANGS)
def test_v2_file_with_function_name(lang: str, tmp_path: Path, start_runtime: Any) -> None:
    f = tmp_path / "pkg" / ("fn.py" if lang == "python" else "fn.js")
    f.parent.mkdir()
    f.write_text(PY_HELLO_CTX if lang == "python" else JS_HANDLER)
    rt = start_runtime(lang, token=None)
    r = fission_v2(rt, f, "fn.handler")
    assert r.status == 200, (r, rt.output())
    r = rt.request("PUT", "/x")
    assert r.status == 200 and r.json() == {"who": "handler", "method": "PUT"}


@pytest.mark.parametrize("lang", LANGS)
def test_v2_file_bare_function_name(lang: str, tmp_path: Path, start_runtime: Any) -> None:
    f = tmp_path / "user"
    f.write_text(PY_HELLO_CTX if lang == "python" else JS_HANDLER)
    rt = start_runtime(lang, token=None)
    r = fission_v2(rt, f, "handler")
    assert r.status == 200, (r, rt.output())
    assert rt.get("/").json() == {"who": "handler", "method": "GET"}


def test_v2_directory_python_module_func(tmp_path: Path, start_runtime: Any) -> None:
    archive = tmp_path / "deployarchive"
    (archive / "pkg").mkdir(parents=True)
    (archive / "pkg" / "__init__.py").write_text("")
    (archive / "pkg" / "helper.py").write_text("GREETING = 'hi'\n")
    (archive / "pkg" / "mod.py").write_text(
        "from pkg.helper import GREETING\n\ndef func(context):\n    return GREETING + ' ' + context.request.path\n"
    )
    rt = start_runtime("python", token=None)
    r = fission_v2(rt, archive, "pkg.mod.func")
    assert r.status == 200, (r, rt.output())
    assert rt.get("/p").text == "hi /p"


def test_v2_directory_node_file_export(tmp_path: Path, start_runtime: Any) -> None:
    archive = tmp_path / "deployarchive"
    archive.mkdir()
    (archive / "helper.js").write_text("module.exports = { greeting: 'hi' };\n")
    (archive / "hello.js").write_text(
        "const { greeting } = require('./helper');\n"
        "exports.world = async (context) => greeting + ' ' + context.request.path;\n"
    )
    rt = start_runtime("nodejs", token=None)
    r = fission_v2(rt, archive, "hello.world")
    assert r.status == 200, (r, rt.output())
    assert rt.get("/p").text == "hi /p"


def test_v2_directory_node_without_function_name_uses_main(tmp_path: Path, start_runtime: Any) -> None:
    archive = tmp_path / "deployarchive"
    archive.mkdir()
    (archive / "package.json").write_text('{"name": "x", "main": "app.js"}')
    (archive / "app.js").write_text(JS_HELLO)
    rt = start_runtime("nodejs", token=None)
    r = fission_v2(rt, archive, "")
    assert r.status == 200, (r, rt.output())
    assert rt.get("/q").text == "hello from /q"


@pytest.mark.parametrize("lang", LANGS)
def test_v2_bad_function_name_is_a_load_error(lang: str, tmp_path: Path, start_runtime: Any) -> None:
    archive = tmp_path / "deployarchive"
    archive.mkdir()
    (archive / ("mod.py" if lang == "python" else "mod.js")).write_text(
        PY_HELLO_CTX if lang == "python" else JS_HANDLER
    )
    rt = start_runtime(lang, token=None)
    r = fission_v2(rt, archive, "mod.nope")
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "load_error"
    assert "nope" in err["message"] and "EntrypointError" in err["message"]
    assert rt.get("/").status == 500  # broken for good, as faasd's load errors


@pytest.mark.parametrize("lang", LANGS)
def test_v2_bad_function_name_for_a_file(lang: str, tmp_path: Path, start_runtime: Any) -> None:
    f = tmp_path / "user"
    f.write_text(PY_HELLO_CTX if lang == "python" else JS_HANDLER)
    rt = start_runtime(lang, token=None)
    r = fission_v2(rt, f, "nope")
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "load_error" and "nope" in err["message"]


@pytest.mark.parametrize("lang", LANGS)
def test_v2_missing_filepath_is_a_400_and_stays_generic(lang: str, tmp_path: Path, start_runtime: Any) -> None:
    rt = start_runtime(lang, token=None)
    r = fission_v2(rt, tmp_path / "not-there", "main")
    assert r.status == 400, r
    assert r.json()["error"]["code"] == "bad_request" and "filepath" in r.json()["error"]["message"]
    r = fission_v2(rt, "relative/path", "main")
    assert r.status == 400 and "absolute" in r.json()["error"]["message"]
    # still generic: faasd's own body works
    r = rt.specialize("hello.py" if lang == "python" else "hello.js", PY_HELLO if lang == "python" else JS_HELLO)
    assert r.status == 200, r


@pytest.mark.parametrize("lang", LANGS)
def test_with_a_token_fissions_body_is_refused(lang: str, tmp_path: Path, userfunc: Path, start_runtime: Any) -> None:
    f = userfunc / "user"
    f.write_text(PY_HELLO if lang == "python" else JS_HELLO)
    rt = start_runtime(lang)  # faasd's way: a fresh token in the environment
    # Without the token: 401, as for any specialization.
    assert fission_v2(rt, f).status == 401
    # Even with the right token, Fission's body is not faasd's.
    doc = {"filepath": str(f), "functionName": ""}
    headers = {"Content-Type": "application/json", **rt.auth_headers()}
    r = rt.request("POST", "/v2/specialize", json.dumps(doc), headers)
    assert r.status == 403, r
    assert r.json()["error"]["code"] == "forbidden"
    assert "FAASD_SPECIALIZE_TOKEN" in r.json()["error"]["message"]
    # POST /specialize is not an endpoint under faasd: a call, 503 before specialization.
    r = rt.request("POST", "/specialize")
    assert r.status == 503 and r.json()["error"]["code"] == "not_specialized"
    # faasd's own specialization still works, and then /specialize is the function's.
    r = rt.specialize("hello.py" if lang == "python" else "hello.js", PY_HELLO if lang == "python" else JS_HELLO)
    assert r.status == 200, r
    r = rt.request("POST", "/specialize")
    assert (r.status, r.text) == (200, "hello from /specialize")
