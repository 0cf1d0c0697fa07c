'use strict';
// faasd Node.js runtime: a generic container that is specialized exactly once
// with one function's source, then hands every request to that function.
// Standard library only; runs on Node 18 and 20. The wire contract is
// described in runtimes/README.md and is identical for every language.

// The specialization token: read and removed from the environment before
// anything else, so the function (loaded much later) never sees it in
// process.env nor passes it to a child process. Empty = specialization is open
// (an image run by hand); faasd always sets one per container.
const SPECIALIZE_TOKEN = Buffer.from(process.env.FAASD_SPECIALIZE_TOKEN || '', 'utf8');
delete process.env.FAASD_SPECIALIZE_TOKEN;

const { AsyncLocalStorage } = require('async_hooks');
const crypto = require('crypto');
const http = require('http');
const fs = require('fs');
const path = require('path');
const stream = require('stream');
const util = require('util');
const { pathToFileURL } = require('url');
const { spawnSync } = require('child_process');

const PORT = parseInt(process.env.PORT || '8888', 10);
const CODE_DIR = process.env.FAASD_CODE_DIR || '/tmp/faasd-function';
// Fission's protocol (only without a token): POST /specialize loads <this>/user.
const USERFUNC_DIR = process.env.FAASD_USERFUNC_DIR || '/userfunc';
const MAX_SPECIALIZE_BYTES = 8 * 1024 * 1024;
const FILENAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
// A package's deployment directory is resolved as Node resolves a relative
// require: the file, the file with these extensions, a directory's index.
const EXTENSIONS = ['.js', '.mjs', '.cjs'];
const BEARER_RE = /^[ \t]*bearer[ \t]+(\S+)[ \t]*$/i;
// A call's id (the X-Request-Id header): visible ASCII, no spaces, 1-200 characters.
const REQUEST_ID_RE = /^[\x21-\x7e]{1,200}$/;
// A line that starts an ES module statement: `export default`, `export const`,
// `import x from` ... (a dynamic `import(` is valid CommonJS and does not count).
const ESM_RE = /^[ \t]*(export\s+(default\b|async\b|function\b|const\b|let\b|var\b|class\b|\{)|import\s*[\w{*'"])/m;

// State machine: generic -> loading -> ready | failed. Never back.
let state = 'generic';
let loadError = null; // {code, message, location} after a failed load
let fn = null; // the resolved entrypoint
let form = null; // 'callback' | 'return'
let fileName = null; // what messages and the log call the function
let deployDir = null; // a package's deployment directory (null: a one-file function)

// ------------------------------------------------- the function's output

// Every line the function writes to stdout/stderr while it handles a call
// with an id goes out as `[<id>] <line>`. The call is found with an
// AsyncLocalStorage: its store is the call's RequestLog, or null (no call, or
// one without an id), and everything the call starts (promises, timers,
// events) carries it. A partial line (no newline yet) waits in the RequestLog
// until its newline or the call's end (handleCall); after that,
// what a timer or a late promise of the call writes goes out as it is.
const requestLog = new AsyncLocalStorage();
const NEWLINE = 0x0a;
const NEWLINE_BUF = Buffer.from('\n');

class RequestLog {
  constructor(requestId) {
    this.prefix = Buffer.from(`[${requestId}] `, 'latin1');
    this.ended = false;
    this.pending = [[], []]; // stdout's, stderr's partial line (Buffers)
  }
}

// The streams' own write functions, for what passes as it is and for the ends.
const rawWrites = [];

function prefixWrites(out, slot) {
  const write = out.write;
  rawWrites[slot] = (chunk) => write.call(out, chunk);
  out.write = function writeWithPrefix(chunk, encoding, cb) {
    const log = requestLog.getStore();
    if (!log || log.ended || (typeof chunk !== 'string' && !(chunk instanceof Uint8Array))) {
      return write.apply(this, arguments);
    }
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, encoding || 'utf8')
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const pending = log.pending[slot];
    let nl = buf.indexOf(NEWLINE);
    if (nl < 0) {
      if (buf.length) pending.push(Buffer.from(buf)); // a copy: the caller may reuse its buffer
      if (typeof cb === 'function') process.nextTick(cb);
      return true;
    }
    const parts = [];
    let start = 0;
    while (nl >= 0) {
      parts.push(log.prefix);
      if (pending.length) {
        parts.push(...pending);
        pending.length = 0;
      }
      parts.push(buf.subarray(start, nl + 1));
      start = nl + 1;
      nl = buf.indexOf(NEWLINE, start);
    }
    if (start < buf.length) pending.push(Buffer.from(buf.subarray(start)));
    return write.call(this, Buffer.concat(parts), cb);
  };
}

prefixWrites(process.stdout, 0);
prefixWrites(process.stderr, 1);

// The call is over: its partial lines go out, later writes are not prefixed.
function endRequestLog(log) {
  if (log.ended) return;
  log.ended = true;
  log.pending.forEach((pending, slot) => {
    if (!pending.length) return;
    rawWrites[slot](Buffer.concat([log.prefix, ...pending, NEWLINE_BUF]));
    pending.length = 0;
  });
}

// ---------------------------------------------------------------- helpers

function sendJson(res, status, obj, extraHeaders) {
  const body = Buffer.from(JSON.stringify(obj));
  const headers = Object.assign(
    { 'content-type': 'application/json', 'content-length': body.length },
    extraHeaders || {}
  );
  // An explicit reason: a writeHead that threw may have left a stale one.
  res.writeHead(status, http.STATUS_CODES[status] || 'Unknown', headers);
  res.end(body);
}

function sendError(res, status, code, message, extra) {
  sendJson(res, status, { error: Object.assign({ code, message }, extra || {}) });
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (limit && size > limit) {
        const err = new Error(`request body larger than ${limit} bytes`);
        err.tooLarge = true;
        reject(err);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// The directories whose paths messages and locations show relative: the code
// directory, or a package's deployment directory (as given, and its real path).
function codeDirs() {
  const dirs = [deployDir || CODE_DIR];
  if (deployDir) {
    try {
      const real = fs.realpathSync(deployDir);
      if (!dirs.includes(real)) dirs.push(real);
    } catch (err) {
      // checked when the specialization came in; nothing to add
    }
  }
  return dirs.map((d) => d.replace(/\/+$/, ''));
}

// Strips the code directory from a text so paths read `hello.js`.
function shortenPaths(text) {
  if (!text) return text;
  for (const d of codeDirs()) {
    const dir = d + '/';
    text = text
      .split(pathToFileURL(dir).href)
      .join('')
      .split(dir)
      .join('');
  }
  return text;
}

// The first `<file>:<line>` of the function's own code found in a stack (a
// package: any file of its deployment, its node_modules included).
function findLocation(err) {
  const stack = err && typeof err.stack === 'string' ? err.stack : '';
  const dirs = codeDirs()
    .flatMap((d) => [d, pathToFileURL(d).href])
    .map(escapeRe)
    .join('|');
  const re = new RegExp(`(?:${dirs})/([^\\s:()]+):(\\d+)`);
  const m = re.exec(stack);
  return m ? `${m[1]}:${m[2]}` : null;
}

function errorType(err) {
  if (err instanceof Error || (err && typeof err.message === 'string')) {
    const name = err.name || (err.constructor && err.constructor.name) || 'Error';
    return typeof err.code === 'string' && !name.includes(err.code) ? `${name} [${err.code}]` : name;
  }
  return 'Error';
}

function errorText(err) {
  if (err instanceof Error || (err && typeof err.message === 'string')) {
    let msg = String(err.message);
    // require() appends the require chain, which says nothing new.
    const cut = msg.indexOf('\nRequire stack:');
    if (cut >= 0) msg = msg.slice(0, cut);
    return shortenPaths(msg).trim();
  }
  return `a non-Error value was thrown: ${util.inspect(err, { depth: 2, breakLength: Infinity })}`;
}

function describe(err) {
  const text = errorText(err);
  const type = errorType(err);
  return text ? `${type}: ${text}` : type;
}

function printStack(prefix, err) {
  const stack = err && err.stack ? err.stack : util.inspect(err);
  process.stderr.write(`${prefix}: ${stack}\n`);
}

// ------------------------------------------------------------ specialize

function validateSpecialize(doc) {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return 'the body must be a JSON object';
  }
  if (doc.deploy_dir != null) {
    const invalid = validateDeploy(doc);
    if (invalid) return invalid;
  } else {
    if (typeof doc.filename !== 'string' || !FILENAME_RE.test(doc.filename)) {
      return '"filename" must be a plain file name such as "hello.js" (letters, digits, "._-")';
    }
    if (typeof doc.code !== 'string') return '"code" must be a string';
  }
  if (doc.entrypoint != null && typeof doc.entrypoint !== 'string') {
    return '"entrypoint" must be a string';
  }
  if (doc.env != null) {
    if (typeof doc.env !== 'object' || Array.isArray(doc.env)) return '"env" must be an object';
    for (const [k, v] of Object.entries(doc.env)) {
      if (!k || k.includes('=') || k.includes('\0')) return `"env" has an invalid name ${JSON.stringify(k)}`;
      if (!['string', 'number', 'boolean'].includes(typeof v)) {
        return `"env.${k}" must be a string`;
      }
    }
  }
  return null;
}

// A package's specialization: the code is in the directory `deploy_dir` already.
function validateDeploy(doc) {
  const dir = doc.deploy_dir;
  if (typeof dir !== 'string' || !path.isAbsolute(dir) || dir.includes('\0')) {
    return '"deploy_dir" must be an absolute directory path such as "/faasd/deploy"';
  }
  if (doc.code != null) return 'give either "code" (a one-file function) or "deploy_dir" (a package), not both';
  if (doc.filename != null && typeof doc.filename !== 'string') return '"filename" must be a string';
  let isDir = false;
  try {
    isDir = fs.statSync(dir).isDirectory();
  } catch (err) {
    isDir = false;
  }
  if (!isDir) return `"deploy_dir" ${JSON.stringify(dir)} is not a directory in this container`;
  return null;
}

// Fission's specialization body ({filepath, functionName, url...}) as faasd's
// own: a directory is a package (functionName its entrypoint, "file.export"); a
// file is loaded where it is, as a package of its folder whose entrypoint is
// the file (and functionName, "export" or "file.export", its export).
// Returns {doc} or {error}.
function fissionDoc(doc) {
  for (const key of ['code', 'deploy_dir', 'filename']) {
    if (doc[key] != null) return { error: `give either Fission's "filepath" or faasd's "${key}", not both` };
  }
  const fp = doc.filepath;
  if (typeof fp !== 'string' || !path.isAbsolute(fp) || fp.includes('\0')) {
    return { error: '"filepath" must be an absolute path such as "/userfunc/deployarchive"' };
  }
  const name = doc.functionName;
  if (name != null && typeof name !== 'string') return { error: '"functionName" must be a string' };
  if (isDirectory(fp)) return { doc: { deploy_dir: fp, entrypoint: name || '' } };
  if (!isFile(fp)) return { error: `"filepath" ${JSON.stringify(fp)} is not a file or directory in this container` };
  const base = path.basename(fp);
  const stem = base.replace(/\.[^.]*$/, '');
  let exp = name || '';
  if (exp.startsWith(base + '.')) exp = exp.slice(base.length + 1);
  else if (exp.startsWith(stem + '.')) exp = exp.slice(stem.length + 1);
  if (exp.includes('.') || exp.includes('/')) {
    return { error: `invalid "functionName" ${JSON.stringify(name)}: expected an export name or file.export` };
  }
  const entrypoint = exp ? `${base}.${exp}` : base;
  return { doc: { deploy_dir: path.dirname(fp), entrypoint, filename: exp ? `${base}.${exp}` : base } };
}

// What messages and the log call the function: its file, or a package's label.
function labelOf(doc) {
  if (doc.deploy_dir == null) return doc.filename;
  const label = doc.filename || doc.entrypoint || 'index';
  return label.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 255);
}

// `location`: the answer's location when no stack frame gives one.
class EntrypointError extends Error {
  constructor(message, location) {
    super(message);
    this.name = 'EntrypointError';
    if (location) this.location = location;
  }
}

function resolveEntrypoint(exported, entrypoint, filename) {
  const isObj = exported !== null && (typeof exported === 'object' || typeof exported === 'function');
  const names = isObj ? Object.keys(exported) : [];
  const listing = names.length ? `exports: ${names.join(', ')}` : 'it exports nothing';
  if (entrypoint) {
    let key = entrypoint;
    // Accept "hello.main" for a file hello.js.
    const stem = filename.replace(/\.[^.]*$/, '');
    if (key.startsWith(stem + '.') && !(isObj && key in exported)) key = key.slice(stem.length + 1);
    const cand = isObj ? exported[key] : undefined;
    if (typeof cand !== 'function') {
      throw new EntrypointError(
        `${filename} does not export a function named '${entrypoint}' (${listing})`
      );
    }
    return cand;
  }
  if (typeof exported === 'function') return exported;
  if (isObj) {
    for (const key of ['default', 'main', 'handler']) {
      if (typeof exported[key] === 'function') return exported[key];
    }
  }
  throw new EntrypointError(
    `${filename} exports no function: expected module.exports = function, export default, ` +
      `or an export named main or handler (${listing})`
  );
}

// V8 reports no position for a SyntaxError in an ES module loaded with
// import(); `node --check` prints it, so ask it (only on this failure path).
function esmSyntaxLocation(file) {
  try {
    const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 5000 });
    return findLocation({ stack: `${r.stderr || ''}` });
  } catch (err) {
    return null;
  }
}

let loadedFile = null; // {file, isEsm} of the function being loaded

function loadFunction(doc) {
  return doc.deploy_dir != null ? loadPackage(doc.deploy_dir, doc.entrypoint || '') : loadFile(doc);
}

async function loadFile(doc) {
  const filename = doc.filename;
  const isEsm = filename.endsWith('.mjs') || (!filename.endsWith('.cjs') && ESM_RE.test(doc.code));
  fs.mkdirSync(CODE_DIR, { recursive: true });
  const file = path.join(CODE_DIR, filename);
  // A .js file is an ES module when the nearest package.json says so.
  const pkg = path.join(CODE_DIR, 'package.json');
  if (isEsm && !filename.endsWith('.mjs')) {
    fs.writeFileSync(pkg, '{"type": "module"}\n');
  } else {
    fs.rmSync(pkg, { force: true });
  }
  fs.writeFileSync(file, doc.code);
  loadedFile = { file, isEsm };
  let exported;
  if (isEsm) {
    exported = await import(pathToFileURL(file).href);
  } else {
    exported = require(file);
  }
  return resolveEntrypoint(exported, doc.entrypoint || '', filename);
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (err) {
    return false;
  }
}

function isDirectory(p) {
  try {
    return fs.statSync(p).isDirectory();
  } catch (err) {
    return false;
  }
}

// The file a relative require of `base` (an absolute path) would load: the
// file, the file with .js/.mjs/.cjs, or a directory's package.json "main" or
// index.js/.mjs/.cjs. null: none.
function resolveFile(base) {
  for (const candidate of [base, ...EXTENSIONS.map((ext) => base + ext)]) {
    if (isFile(candidate)) return candidate;
  }
  if (!isDirectory(base)) return null;
  try {
    const main = JSON.parse(fs.readFileSync(path.join(base, 'package.json'), 'utf8')).main;
    if (typeof main === 'string' && main) {
      const found = resolveFile(path.resolve(base, main));
      if (found) return found;
    }
  } catch (err) {
    // no package.json, or none that names a main: the index
  }
  for (const ext of EXTENSIONS) {
    if (isFile(path.join(base, 'index' + ext))) return path.join(base, 'index' + ext);
  }
  return null;
}

// Whether Node loads `file` as an ES module: .mjs, or a .js file whose nearest
// package.json says "type": "module".
function isEsmFile(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (isFile(pkg)) {
      try {
        return JSON.parse(fs.readFileSync(pkg, 'utf8')).type === 'module';
      } catch (err) {
        return false; // Node reports the broken package.json when it loads the file
      }
    }
    if (path.dirname(dir) === dir) return false;
  }
}

// Fission's Node.js entrypoint: "file.export" (the file relative to the
// deployment directory, the last dot before the export), "file" (the module's
// function), or empty (the directory itself: package.json "main", else index).
// A name that is a file in full ("handler.js") is that file.
function splitEntrypoint(dir, entry) {
  if (!entry) return { file: '', name: '' };
  if (/\.[cm]?js$/.test(entry) && isFile(path.resolve(dir, entry))) return { file: entry, name: '' };
  const dot = entry.lastIndexOf('.');
  if (dot >= 0 && dot > entry.lastIndexOf('/')) return { file: entry.slice(0, dot), name: entry.slice(dot + 1) };
  return { file: entry, name: '' };
}

async function loadPackage(dir, entrypoint) {
  deployDir = dir;
  const root = path.resolve(dir);
  const { file: rel, name } = splitEntrypoint(root, entrypoint);
  const what = entrypoint ? `entrypoint ${entrypoint}` : 'no entrypoint given';
  const base = path.resolve(root, rel);
  if (base !== root && !base.startsWith(root + path.sep)) {
    throw new EntrypointError(`'${rel}' is outside the deployment (${what})`, rel);
  }
  const file = resolveFile(base);
  if (!file && !rel) {
    throw new EntrypointError(
      `no index.js, index.mjs or index.cjs in the deployment, and no package.json "main" that exists (${what})`,
      'index.js'
    );
  }
  if (!file) {
    throw new EntrypointError(
      `no file '${rel}' in the deployment (${what}); tried ${rel}, ${rel}.js, ${rel}.mjs, ${rel}.cjs ` +
        `and ${rel}/index.js`,
      rel
    );
  }
  const shownFile = path.relative(root, file);
  const isEsm = isEsmFile(file);
  loadedFile = { file, isEsm };
  let exported;
  if (isEsm) {
    exported = await import(pathToFileURL(file).href);
  } else {
    try {
      exported = require(file);
    } catch (err) {
      if (!err || err.code !== 'ERR_REQUIRE_ESM') throw err;
      loadedFile = { file, isEsm: true }; // an ES module after all: import() it
      exported = await import(pathToFileURL(file).href);
    }
  }
  const isObj = exported !== null && (typeof exported === 'object' || typeof exported === 'function');
  const names = isObj ? Object.keys(exported) : [];
  const listing = names.length ? `exports: ${names.join(', ')}` : 'it exports nothing';
  if (name) {
    let cand = isObj ? exported[name] : undefined;
    // A CommonJS module loaded with import(): its exports are the default.
    if (typeof cand !== 'function' && isObj && exported.default && typeof exported.default[name] === 'function') {
      cand = exported.default[name];
    }
    if (typeof cand !== 'function') {
      throw new EntrypointError(`${shownFile} has no function export '${name}' (${what}); ${listing}`, shownFile);
    }
    return cand;
  }
  if (typeof exported === 'function') return exported;
  if (isObj) {
    for (const key of ['default', 'main', 'handler']) {
      if (typeof exported[key] === 'function') return exported[key];
    }
  }
  throw new EntrypointError(
    `${shownFile} exports no function: expected module.exports = function, export default, ` +
      `or an export named main or handler (${what}); ${listing}`,
    shownFile
  );
}

// Whether the request carries `Authorization: Bearer <the token>`, compared in
// constant time on the raw bytes. No token at start: open.
function authorized(req) {
  if (SPECIALIZE_TOKEN.length === 0) return true;
  const m = BEARER_RE.exec(req.headers.authorization || '');
  if (!m) return false;
  const given = Buffer.from(m[1], 'latin1'); // Node decoded the header as latin1
  return given.length === SPECIALIZE_TOKEN.length && crypto.timingSafeEqual(given, SPECIALIZE_TOKEN);
}

async function handleSpecialize(req, res, fissionV1) {
  const started = process.hrtime.bigint();
  // The token first: no state is told and no body is read without it.
  if (!authorized(req)) {
    const extra = { 'www-authenticate': 'Bearer' };
    // Drained, but a body larger than any specialization closes the connection.
    if (Number(req.headers['content-length']) > MAX_SPECIALIZE_BYTES) extra.connection = 'close';
    let drained = 0;
    req.on('data', (chunk) => {
      drained += chunk.length;
      if (drained > MAX_SPECIALIZE_BYTES && drained - chunk.length <= MAX_SPECIALIZE_BYTES && req.socket) {
        req.socket.destroySoon(); // after the 401 is out
      }
    });
    req.resume();
    const message =
      req.headers.authorization === undefined
        ? "POST /v2/specialize needs this container's specialization token: Authorization: Bearer <token>"
        : 'the specialization token is wrong';
    return sendJson(res, 401, { error: { code: 'unauthorized', message } }, extra);
  }
  if (state !== 'generic') {
    req.resume();
    return sendError(res, 409, 'already_specialized', alreadyMessage());
  }
  let raw;
  try {
    raw = await readBody(req, MAX_SPECIALIZE_BYTES);
  } catch (err) {
    if (err.tooLarge) return sendError(res, 413, 'bad_request', err.message);
    return sendError(res, 400, 'bad_request', `could not read the request body: ${err.message}`);
  }
  // Checked again: another specialization may have started while we read.
  if (state !== 'generic') return sendError(res, 409, 'already_specialized', alreadyMessage());
  let doc;
  if (fissionV1) {
    // Fission's v1 sends no body (read away above): the code is in /userfunc/user.
    doc = { filepath: path.join(USERFUNC_DIR, 'user') };
  } else {
    // UTF-8 JSON, not necessarily ASCII-escaped: faasd sends the source as it is.
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch (err) {
      return sendError(res, 400, 'bad_request', 'the body is not valid UTF-8');
    }
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return sendError(res, 400, 'bad_request', `the body is not valid JSON: ${err.message}`);
    }
  }
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'filepath' in doc) {
    // Fission's body: only in a container started without faasd's token.
    if (SPECIALIZE_TOKEN.length) {
      return sendError(
        res,
        403,
        'forbidden',
        "Fission's specialization (filepath, functionName) is accepted only by a container " +
          "started without FAASD_SPECIALIZE_TOKEN; this one is faasd's"
      );
    }
    const converted = fissionDoc(doc);
    if (converted.error) return sendError(res, 400, 'bad_request', converted.error);
    doc = converted.doc;
  }
  const invalid = validateSpecialize(doc);
  if (invalid) return sendError(res, 400, 'bad_request', invalid);

  state = 'loading';
  fileName = labelOf(doc);
  for (const [k, v] of Object.entries(doc.env || {})) process.env[k] = String(v);
  try {
    fn = await loadFunction(doc);
  } catch (err) {
    let location = findLocation(err);
    if (!location && err instanceof SyntaxError && loadedFile && loadedFile.isEsm) {
      location = esmSyntaxLocation(loadedFile.file);
    }
    if (!location && err && typeof err.location === 'string') location = err.location;
    // A package's file that failed with no line (an ES module import of a missing package).
    if (!location && deployDir && loadedFile) location = path.relative(path.resolve(deployDir), loadedFile.file);
    location = location || fileName;
    const hasLine = /:\d+$/.test(location);
    const message = describe(err) + (hasLine ? ` (${location})` : '');
    loadError = { code: 'load_error', message, location };
    state = 'failed';
    printStack(`faasd-runtime: failed to load ${fileName}`, err);
    console.log(`faasd-runtime: specialization of ${fileName} failed: ${message}`);
    return sendJson(res, 500, { error: loadError });
  }
  form = fn.length >= 2 ? 'callback' : 'return';
  state = 'ready';
  const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
  let where = '';
  if (deployDir) {
    const entry = doc.entrypoint || 'index';
    where = `${entry === fileName ? '' : entry + ' '}in ${deployDir}, `;
  }
  console.log(`faasd-runtime: specialized ${fileName} (${where}${form} form) in ${loadMs.toFixed(1)} ms`);
  return sendJson(res, 200, { status: 'specialized', load_ms: Math.round(loadMs * 1000) / 1000 });
}

function alreadyMessage() {
  if (state === 'loading') return `this container is already loading ${fileName}`;
  if (state === 'failed') return `this container already tried to load ${fileName} and failed`;
  return `this container is already specialized with ${fileName}`;
}

// ------------------------------------------------------------ invocation

function parseQuery(search) {
  const query = {};
  for (const [k, v] of new URLSearchParams(search)) {
    if (!Object.prototype.hasOwnProperty.call(query, k)) query[k] = v;
    else if (Array.isArray(query[k])) query[k].push(v);
    else query[k] = [query[k], v];
  }
  return query;
}

function mediaType(contentType) {
  return (contentType || '').split(';')[0].trim().toLowerCase();
}

function charsetOf(contentType) {
  const m = /;\s*charset="?([^";\s]+)"?/i.exec(contentType || '');
  const cs = m ? m[1].toLowerCase() : 'utf-8';
  if (cs === 'utf-8' || cs === 'utf8') return 'utf8';
  if (cs === 'iso-8859-1' || cs === 'latin1' || cs === 'us-ascii' || cs === 'ascii') return 'latin1';
  if (cs === 'utf-16le' || cs === 'ucs-2') return 'utf16le';
  return 'utf8';
}

class BadRequest extends Error {}

// Body parsing, like Express's json/text/urlencoded parsers but without
// decoding forms: JSON -> value ({} when empty), text/* and forms -> string,
// anything else -> Buffer.
function parseBody(raw, contentType) {
  const mt = mediaType(contentType);
  if (mt === 'application/json' || mt.endsWith('+json')) {
    if (raw.length === 0) return {};
    try {
      return JSON.parse(raw.toString(charsetOf(contentType)));
    } catch (err) {
      throw new BadRequest(`the request body is not valid JSON: ${err.message}`);
    }
  }
  if (
    mt.startsWith('text/') ||
    mt === 'application/x-www-form-urlencoded' ||
    mt === 'application/xml' ||
    mt === 'application/javascript'
  ) {
    return raw.toString(charsetOf(contentType));
  }
  return raw;
}

// The first value of header `name` (lower case) as it came, in rawHeaders.
function firstRawHeader(rawHeaders, name) {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === name.length && rawHeaders[i].toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}

function buildRequest(req, raw) {
  const url = req.url || '/';
  const q = url.indexOf('?');
  const headers = {};
  const context = {};
  let paramsHeader;
  let requestId;
  for (const [k, v] of Object.entries(req.headers)) {
    if (k === 'x-request-id') {
      // Node joins a repeated header with ", ": the first one as it came.
      requestId = Array.isArray(v) ? v[0] : v.includes(',') ? firstRawHeader(req.rawHeaders, k) : v;
    }
    if (k.startsWith('x-faasd-')) {
      // faasd's own headers (its data plane strips callers'): never among the
      // headers; the params go to params, the rest (the trigger, call id,
      // event...) to context. Node joins a repeated header with ", ": a value
      // with a comma is looked up again for its first line.
      if (k === 'x-faasd-params') paramsHeader = Array.isArray(v) ? v[0] : v;
      else if (Array.isArray(v)) context[k.slice(8).replaceAll('-', '_')] = v[0];
      else context[k.slice(8).replaceAll('-', '_')] = v.includes(',') ? firstRawHeader(req.rawHeaders, k) : v;
      continue;
    }
    headers[k] = v;
  }
  // The call's id (faasd sends one with every call): in the context, and the
  // prefix of every line the function writes; it stays among the headers too.
  if (requestId !== undefined && REQUEST_ID_RE.test(requestId)) context.request_id = requestId;
  let params = {};
  if (paramsHeader) {
    try {
      params = JSON.parse(paramsHeader);
    } catch (err) {
      throw new BadRequest(`the X-Faasd-Params header is not valid JSON: ${err.message}`);
    }
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new BadRequest('the X-Faasd-Params header must be a JSON object');
    }
  }
  return {
    method: req.method,
    url,
    path: q >= 0 ? url.slice(0, q) : url,
    query: q >= 0 ? parseQuery(url.slice(q + 1)) : {},
    headers,
    params,
    context,
    body: parseBody(raw, req.headers['content-type']),
    rawBody: raw,
  };
}

class FunctionResultError extends TypeError {
  constructor(message) {
    super(message);
    this.name = 'FunctionResultError';
  }
}

const DROPPED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

function checkStatus(status) {
  if (status === undefined || status === null) status = 200;
  if (typeof status === 'string' && /^\d{3}$/.test(status)) status = Number(status);
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new FunctionResultError(`invalid status code ${util.inspect(status)}: expected 200-599`);
  }
  return status;
}

const CONTROL_NAMES = { '\r': 'a CR', '\n': 'a LF', '\0': 'a NUL' };

// Throws FunctionResultError for a header Node cannot send, naming it. Checked
// before anything is written (writeHead would throw halfway otherwise).
function checkHeader(name, value) {
  try {
    http.validateHeaderName(name);
  } catch (err) {
    throw new FunctionResultError(
      `header name ${util.inspect(name)} cannot be sent in HTTP/1.1 ` +
        "(a name is letters, digits and !#$%&'*+-.^_`|~ only)"
    );
  }
  try {
    http.validateHeaderValue(name, value);
  } catch (err) {
    // Node allows tab, visible ASCII and latin-1 (U+0080-U+00FF) only.
    const i = value.search(/[^\t\x20-\x7e\x80-\xff]/);
    const c = i >= 0 ? value[i] : '';
    const code = i >= 0 ? value.codePointAt(i) : 0;
    const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    let why;
    if (i < 0) why = err.message;
    else if (CONTROL_NAMES[c]) why = `it contains ${CONTROL_NAMES[c]} at index ${i}`;
    else if (code > 0xff) {
      why = `${util.inspect(String.fromCodePoint(code))} (${hex}) at index ${i} is not latin-1; percent- or RFC 8187-encode it`;
    } else why = `it contains the control character ${hex} at index ${i}`;
    throw new FunctionResultError(
      `header ${util.inspect(name)} has a value that cannot be sent in HTTP/1.1 (${why})`
    );
  }
}

// name -> value or [values] (an array repeats the header: two Set-Cookie lines).
// Every name and value is checked here, before anything is written.
function checkHeaders(headers) {
  const out = {};
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers)) {
      throw new FunctionResultError('headers must be an object of name -> value');
    }
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined || v === null) continue;
      const values = Array.isArray(v) ? v.map(String) : String(v);
      for (const one of Array.isArray(values) ? values : [values]) checkHeader(k, one);
      if (DROPPED_HEADERS.has(k.toLowerCase())) continue;
      out[k] = values;
    }
  }
  return out;
}

function hasContentType(out) {
  return Object.keys(out).some((k) => k.toLowerCase() === 'content-type');
}

// A body that is sent as it comes: a stream (anything with .pipe), an async
// iterable (async generator, Readable) or a generator object.
function isStreamBody(body) {
  if (body === null || typeof body !== 'object') return false;
  if (Buffer.isBuffer(body) || body instanceof Uint8Array || Array.isArray(body)) return false;
  return (
    typeof body[Symbol.asyncIterator] === 'function' ||
    typeof body.pipe === 'function' ||
    Object.prototype.toString.call(body) === '[object Generator]'
  );
}

function streamIterator(body) {
  if (typeof body[Symbol.asyncIterator] === 'function') return body[Symbol.asyncIterator]();
  if (typeof body.pipe === 'function' && typeof body.on === 'function') {
    // An old-style stream: wrap() turns its events into a Readable.
    return new stream.Readable().wrap(body)[Symbol.asyncIterator]();
  }
  return body; // a generator object: next() / return()
}

function chunkBytes(chunk) {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return Buffer.from(chunk);
  throw new FunctionResultError(
    `a streamed body must produce strings or Buffers, got ${util.inspect(chunk, { depth: 1 })}`
  );
}

// A streamed body that will not be sent: release it without reading it.
function discardStream(body) {
  try {
    if (typeof body.destroy === 'function') body.destroy();
    else if (typeof body.return === 'function') closeIterator(body);
  } catch (err) {
    // closing must never fail the response a second time
  }
}

function closeIterator(it) {
  if (it && typeof it.return === 'function') {
    Promise.resolve()
      .then(() => it.return())
      .catch(() => {});
  }
}

// Sends a streamed body with chunked transfer encoding, each chunk as it comes.
// The status and headers leave with the first chunk, so a stream that fails
// before producing anything is still a clean 500. A failure after that
// destroys the connection: the client sees a truncated chunked body.
async function writeStream(res, method, status, out, body) {
  const it = streamIterator(body);
  let closed = false;
  res.on('close', () => {
    if (!res.writableFinished && !closed) {
      closed = true;
      closeIterator(it); // the client went away: stop the producer
    }
  });
  if (method === 'HEAD' || status === 204 || status === 304) {
    closeIterator(it);
    if (status !== 204 && status !== 304 && !hasContentType(out)) out['content-type'] = 'application/octet-stream';
    res.writeHead(status, out);
    res.end();
    return;
  }
  let first;
  try {
    do first = await it.next();
    while (!first.done && chunkBytes(first.value).length === 0);
  } catch (err) {
    closeIterator(it);
    throw err; // nothing sent yet: a function_error
  }
  if (closed) return;
  if (first.done) {
    if (!hasContentType(out)) out['content-type'] = 'application/octet-stream';
    out['content-length'] = 0;
    res.writeHead(status, out);
    res.end();
    return;
  }
  const firstBytes = chunkBytes(first.value);
  if (!hasContentType(out)) {
    out['content-type'] = typeof first.value === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream';
  }
  // No Content-Length: Node sends `Transfer-Encoding: chunked` (HTTP/1.1).
  res.writeHead(status, out);
  let ok = res.write(firstBytes);
  for (;;) {
    if (!ok && !closed) {
      await new Promise((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    }
    if (closed) return;
    let next;
    try {
      next = await it.next();
      if (closed) return;
      if (next.done) break;
      const bytes = chunkBytes(next.value);
      if (bytes.length === 0) continue; // an empty chunk would end the body
      ok = res.write(bytes);
    } catch (err) {
      closeIterator(it);
      throw err; // headers are out: functionFailed destroys the connection
    }
  }
  res.end();
}

// Turns (status, body, headers) from a function into bytes on the wire.
// Returns a promise when the body is streamed.
function writeResult(res, method, status, body, headers) {
  let out;
  try {
    status = checkStatus(status);
    out = checkHeaders(headers); // before the first chunk of a stream is awaited
  } catch (err) {
    if (isStreamBody(body)) discardStream(body);
    throw err;
  }
  if (isStreamBody(body)) return writeStream(res, method, status, out, body);
  const hasType = hasContentType(out);
  let payload;
  let type;
  if (body === undefined || body === null) {
    payload = Buffer.alloc(0);
  } else if (typeof body === 'string') {
    payload = Buffer.from(body, 'utf8');
    type = 'text/plain; charset=utf-8';
  } else if (Buffer.isBuffer(body)) {
    payload = body;
    type = 'application/octet-stream';
  } else if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    payload =
      body instanceof ArrayBuffer
        ? Buffer.from(body)
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    type = 'application/octet-stream';
  } else {
    const text = JSON.stringify(body);
    if (text === undefined) throw new FunctionResultError(`cannot send a ${typeof body} as a body`);
    payload = Buffer.from(text, 'utf8');
    type = 'application/json';
  }
  if (status === 204 || status === 304) payload = Buffer.alloc(0);
  else if (type && !hasType) out['content-type'] = type;
  if (status !== 204 && status !== 304) out['content-length'] = payload.length;
  // writeHead validates names and values; it throws before anything is sent.
  res.writeHead(status, out);
  res.end(method === 'HEAD' ? undefined : payload);
  return undefined;
}

function isResponseObject(v) {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    !Buffer.isBuffer(v) &&
    !isStreamBody(v) &&
    ('status' in v || 'body' in v || 'headers' in v)
  );
}

function writeReturned(res, method, v) {
  if (v === undefined || v === null) return writeResult(res, method, 204, null, null);
  if (isResponseObject(v)) return writeResult(res, method, v.status, v.body, v.headers);
  return writeResult(res, method, 200, v, null);
}

function functionFailed(res, err) {
  printStack('faasd-runtime: function error', err);
  if (res.headersSent) {
    // Part of the answer is out: cut the connection without the final chunk,
    // so the client sees a truncated body, after what was written is flushed.
    const socket = res.socket;
    if (socket && !socket.destroyed) {
      socket.destroySoon();
      setTimeout(() => socket.destroy(), 5000).unref();
    } else res.destroy();
    return;
  }
  const location = findLocation(err);
  sendError(res, 500, 'function_error', describe(err), location ? { location } : undefined);
}

async function handleCall(req, res) {
  let raw;
  try {
    raw = await readBody(req, 0);
  } catch (err) {
    return sendError(res, 400, 'bad_request', `could not read the request body: ${err.message}`);
  }
  let request;
  try {
    request = buildRequest(req, raw);
  } catch (err) {
    if (err instanceof BadRequest) return sendError(res, 400, 'bad_request', err.message);
    throw err;
  }
  const requestId = request.context.request_id;
  if (requestId === undefined) return requestLog.run(null, () => callFunction(req, res, request, null));
  // The call ends when its answer is out (or the client is gone) and the
  // function has returned (a callback-form function: once it was called).
  const log = new RequestLog(requestId);
  let running = 2;
  const done = () => {
    if (--running === 0) endRequestLog(log);
  };
  stream.finished(res, done);
  return requestLog.run(log, () => callFunction(req, res, request, requestId)).finally(done);
}

// Runs the function for one call (inside the call's requestLog) and sends its answer.
async function callFunction(req, res, request, requestId) {
  const context = { request, request_id: requestId };
  const method = req.method;

  if (form === 'callback') {
    let done = false;
    const callback = (status, body, headers) => {
      if (done) {
        process.stderr.write('faasd-runtime: callback called more than once; ignored\n');
        return;
      }
      done = true;
      Promise.resolve()
        .then(() => writeResult(res, method, status, body, headers))
        .catch((err) => functionFailed(res, err));
    };
    try {
      const ret = fn(context, callback);
      if (ret && typeof ret.then === 'function') {
        ret.then(undefined, (err) => {
          if (!done) {
            done = true;
            functionFailed(res, err);
          } else printStack('faasd-runtime: function rejected after responding', err);
        });
      }
    } catch (err) {
      if (!done) {
        done = true;
        functionFailed(res, err);
      } else printStack('faasd-runtime: function threw after responding', err);
    }
    return undefined;
  }

  let value;
  try {
    value = await fn(context);
  } catch (err) {
    return functionFailed(res, err);
  }
  try {
    await writeReturned(res, method, value);
  } catch (err) {
    functionFailed(res, err);
  }
  return undefined;
}

// ---------------------------------------------------------------- server

function route(req, res) {
  const url = req.url || '/';
  const q = url.indexOf('?');
  const p = q >= 0 ? url.slice(0, q) : url;
  if (p === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 2 });
    res.end(req.method === 'HEAD' ? undefined : 'ok');
    return undefined;
  }
  if (p === '/v2/specialize' && req.method === 'POST') return handleSpecialize(req, res, false);
  // Fission's v1 (the code in /userfunc/user): only in a container without a token.
  if (p === '/specialize' && req.method === 'POST' && SPECIALIZE_TOKEN.length === 0) {
    return handleSpecialize(req, res, true);
  }
  if (state === 'ready') return handleCall(req, res);
  req.resume();
  if (state === 'failed') return sendJson(res, 500, { error: loadError });
  return sendError(
    res,
    503,
    'not_specialized',
    state === 'loading'
      ? 'this container is still loading its function'
      : 'this container has no function yet: POST /v2/specialize first'
  );
}

const server = http.createServer((req, res) => {
  Promise.resolve()
    .then(() => route(req, res))
    .catch((err) => {
      printStack('faasd-runtime: internal error', err);
      if (!res.headersSent) sendError(res, 500, 'internal_error', describe(err));
      else res.destroy();
    });
});
// Idle keep-alive connections stay open longer than a pooling proxy keeps them.
server.keepAliveTimeout = 75 * 1000;
server.headersTimeout = 80 * 1000;
server.requestTimeout = 0;

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

server.listen(PORT, '0.0.0.0', () => {
  const openNote = SPECIALIZE_TOKEN.length ? '' : ' (no FAASD_SPECIALIZE_TOKEN: specialization needs no token)';
  console.log(`faasd-runtime: nodejs ${process.version} listening on 0.0.0.0:${PORT}${openNote}`);
});
