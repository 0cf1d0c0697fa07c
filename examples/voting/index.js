// A poll kept in Redis: a page to vote on, votes, and live results.
//
//   GET  /vote          the page: the choices, a vote button each, the results (polled every 2 s)
//   POST /vote          a vote: JSON {"choice": "tabs"} or a form choice=tabs; answers the results
//   GET  /vote/results  the results as JSON: {"question", "choices": {"tabs": 3, ...}, "total"}
//
// The choices come from the variable CHOICES (comma-separated, default
// tabs,spaces), the question from QUESTION. Votes are counted in the hash
// "votes:<poll>" (POLL, default "main") with HINCRBY, which Redis applies one
// at a time: no vote is lost, however many arrive together.
'use strict';

const { createClient } = require('redis');

const POLL = process.env.POLL || 'main';
const KEY = `votes:${POLL}`;
const QUESTION = process.env.QUESTION || 'Tabs or spaces?';
const CHOICES = (process.env.CHOICES || 'tabs,spaces')
  .split(',')
  .map((c) => c.trim())
  .filter(Boolean);

let connecting = null; // one client per instance, shared by its calls

function db() {
  if (connecting === null) {
    const client = createClient({
      url: process.env.REDIS_URL || 'redis://redis:6379',
      socket: { connectTimeout: 5000 },
    });
    // Without a listener an 'error' (Redis restarting) would end the process; the client reconnects.
    client.on('error', (err) => console.error('redis:', err.message));
    connecting = client.connect().then(() => client);
    connecting.catch(() => {
      connecting = null; // the next call tries again
    });
  }
  return connecting;
}

function results(counts) {
  const choices = {};
  let total = 0;
  for (const choice of CHOICES) {
    choices[choice] = Number(counts[choice] || 0);
    total += choices[choice];
  }
  return { question: QUESTION, choices, total };
}

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(action, current, voted) {
  const rows = CHOICES.map(
    (c) =>
      `      <li><button name="choice" value="${escapeHtml(c)}">${escapeHtml(c)}</button> ` +
      `<span class="count" id="count-${escapeHtml(c)}">${current.choices[c]}</span></li>`,
  ).join('\n');
  return `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>${escapeHtml(QUESTION)}</title>
    <style>body{font-family:sans-serif;max-width:30em;margin:2em auto}li{margin:.4em 0}button{min-width:8em}</style>
  </head>
  <body>
    <h1>${escapeHtml(QUESTION)}</h1>
${voted ? `    <p>Thank you for voting ${escapeHtml(voted)}.</p>\n` : ''}    <form method="post" action="${escapeHtml(action)}">
    <ul>
${rows}
    </ul>
    </form>
    <p>Votes: <span id="total">${current.total}</span></p>
    <script>
      // Live results: poll ${escapeHtml(action)}/results every 2 s.
      setInterval(async () => {
        const r = await fetch(${JSON.stringify(action + '/results')});
        if (!r.ok) return;
        const { choices, total } = await r.json();
        for (const [c, n] of Object.entries(choices)) {
          const el = document.getElementById('count-' + c);
          if (el) el.textContent = n;
        }
        document.getElementById('total').textContent = total;
      }, 2000);
    </script>
  </body>
</html>
`;
}

function choiceOf(request) {
  const type = String(request.headers['content-type'] || '');
  if (type.startsWith('application/json')) {
    return request.body && typeof request.body === 'object' ? request.body.choice : undefined;
  }
  const text = typeof request.body === 'string' ? request.body : request.rawBody.toString('utf8');
  return new URLSearchParams(text).get('choice');
}

const html = (body, status = 200) => ({ status, headers: { 'content-type': 'text/html; charset=utf-8' }, body });

module.exports = async (context) => {
  const request = context.request;
  const path = request.path.replace(/\/+$/, '');
  const base = path.endsWith('/results') ? path.slice(0, -'/results'.length) : path;
  const client = await db();

  if (path.endsWith('/results')) {
    if (request.method !== 'GET') return { status: 405, headers: { allow: 'GET' }, body: { error: 'GET only' } };
    return results(await client.hGetAll(KEY));
  }
  if (request.method === 'GET') {
    return html(page(base, results(await client.hGetAll(KEY))));
  }
  if (request.method === 'POST') {
    const form = !String(request.headers['content-type'] || '').startsWith('application/json');
    const choice = choiceOf(request);
    if (!CHOICES.includes(choice)) {
      const error = { error: `choose one of ${CHOICES.join(', ')}`, choices: CHOICES };
      return form ? html(`<p>${escapeHtml(error.error)}</p>\n`, 400) : { status: 400, body: error };
    }
    // The vote and the results it makes, in one MULTI/EXEC.
    const [, counts] = await client.multi().hIncrBy(KEY, choice, 1).hGetAll(KEY).exec();
    const current = results(counts);
    // A browser's form post gets the page back with the results; anything else the results as JSON.
    return form ? html(page(base, current, choice)) : current;
  }
  return { status: 405, headers: { allow: 'GET, POST' }, body: { error: 'GET or POST' } };
};
