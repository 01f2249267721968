/**
 * The floor of HTTPS issuance in Node on this machine: the least work any Node implementation of `/v1/sign` must do
 * per request, and nothing else, for scripts/bench/issue-api.ts to measure next to agentca and cfssl in one run.
 * It is not agentca and issues nothing usable: it tells how much of the distance to a throughput goal no Node design
 * can close here.
 *
 * Per request (POST, JSON body {"csr": PEM}, `Authorization: Bearer TOKEN`), over node:https with keep-alive:
 *   - the body read, JSON-parsed, the PEM decoded;
 *   - the CSR's info, point and signature found by a bare DER walk (no checks of its structure, names or attributes);
 *   - the CSR's signature checked by agentca's native P-256 verifier on the event loop (a verify worker thread, as
 *     agentca has, measured slower here for this little work per request: 2,940 against 3,250 req/s at c16);
 *   - a "TBS" (fixed bytes of a leaf's size, the serial and the key) signed with node:crypto's callback sign
 *     (libuv's pool), as agentca signs; the serial is agentca's layout (a prefix octet, three octets of time, 16 from
 *     the CSPRNG), so the certificates' index grows at its right end as agentca's does;
 *   - with STORE=1, in one SQLite transaction per event-loop turn (WAL, synchronous=NORMAL, then an fdatasync of the
 *     WAL on libuv's pool before any answer, as agentca's write queue): the token's SHA-256 consumed by an UPDATE
 *     (unknown or used → 401), the certificate inserted, an audit row chained by SHA-256 inserted;
 *   - the answer: JSON with the "certificate" as PEM.
 * Not done, and all done by agentca: CSR structure, key and name checks; policy; a real TBS; the re-parse check of
 * the signed certificate; JSON schema; rate limit; access log; the serial reserved apart; instance IDs; the chain.
 *
 * usage: node scripts/bench/issue-floor-server.mjs PORT KEY.pem CERT.pem [TOKENS_FILE]
 *        STORE=1 with TOKENS_FILE (one token per line) and DB=path: the store above. Prints "listening" when ready.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';

const [port, keyFile, certFile, tokensFile] = process.argv.slice(2);
const STORE = process.env.STORE === '1';
const repo = new URL('../../', import.meta.url).pathname;
const { verify } = createRequire(`${repo}packages/node/package.json`)('./build/Release/ecdsa_verify.node');
const caKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const TBS_FIXED = crypto.randomBytes(420); // a leaf TBS is ~500 bytes: these plus the serial and the point
const SPIFFE = 'spiffe://bench.example/agent';

/** As agentca's serials (packages/core/src/issuance/serial.ts): 0x4a, the time in 1/64 s (3 octets), 16 random. */
function newSerial() {
  const out = Buffer.allocUnsafe(20);
  out[0] = 0x4a;
  out.writeUIntBE(Math.floor((Date.now() * 64) / 1000) % 2 ** 24, 1, 3);
  crypto.randomFillSync(out, 4, 16);
  return out;
}

/** [header length, content length] of the DER element at b[i]. */
function tagLength(b, i) {
  let len = b[i + 1];
  let h = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[i + 2 + k];
    h = 2 + n;
  }
  return [h, len];
}

/** A CSR's signed info, its key's point and its signature: positions only, nothing checked. */
function walkCsr(der) {
  let [h] = tagLength(der, 0);
  let i = h;
  const [ih, il] = tagLength(der, i);
  const info = der.subarray(i, i + ih + il);
  let j = i + ih;
  for (let skip = 0; skip < 2; skip++) {
    const [a, b] = tagLength(der, j); // version, subject
    j += a + b;
  }
  let [a, b] = tagLength(der, j); // the SPKI
  let k = j + a;
  [a, b] = tagLength(der, k); // its algorithm
  k += a + b;
  const [bh, bl] = tagLength(der, k); // its BIT STRING
  const point = der.subarray(k + bh + 1, k + bh + bl);
  i += ih + il;
  [a, b] = tagLength(der, i); // the signature algorithm
  i += a + b;
  [h, b] = tagLength(der, i);
  return { info, point, signature: der.subarray(i + h + 1, i + h + b) };
}

let store = null;
if (STORE) {
  const Database = createRequire(`${repo}packages/store-sqlite/package.json`)('better-sqlite3');
  const file = process.env.DB;
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`create table tokens (hash blob primary key, used integer not null default 0);
           create table certificates (serial blob primary key, der blob not null, spiffe_id text not null);
           create table audit (seq integer primary key, at integer not null, event text not null, hash blob not null)`);
  const add = db.prepare('insert into tokens (hash) values (?)');
  db.transaction(() => {
    for (const t of fs.readFileSync(tokensFile, 'utf8').split('\n')) if (t) add.run(crypto.hash('sha256', t, 'buffer'));
  })();
  store = {
    db,
    consume: db.prepare('update tokens set used = 1 where hash = ? and used = 0'),
    insertCert: db.prepare('insert into certificates values (?, ?, ?)'),
    insertAudit: db.prepare('insert into audit (at, event, hash) values (?, ?, ?)'),
    walFd: fs.openSync(`${file}-wal`, 'r'),
    head: Buffer.alloc(32),
    pending: [],
    scheduled: false,
    syncing: false,
  };
}

/** One transaction for the writes queued in this turn, then the WAL's fdatasync off the loop, then the answers. */
function flush() {
  const s = store;
  s.scheduled = false;
  if (s.syncing || s.pending.length === 0) return;
  const batch = s.pending;
  s.pending = [];
  s.db.exec('BEGIN');
  for (const w of batch) {
    if (s.consume.run(w.tokenHash).changes !== 1) {
      w.refused = true;
      continue;
    }
    s.insertCert.run(w.serial, w.cert, SPIFFE);
    const event = JSON.stringify({ event: 'issued', serial: w.serial.toString('hex'), spiffe_id: SPIFFE });
    s.head = crypto.hash('sha256', Buffer.concat([s.head, Buffer.from(event)]), 'buffer');
    s.insertAudit.run(Date.now(), event, s.head);
  }
  s.db.exec('COMMIT');
  s.syncing = true;
  fs.fdatasync(s.walFd, (err) => {
    if (err) throw err;
    s.syncing = false;
    for (const w of batch) w.settle();
    if (s.pending.length > 0) flush();
  });
}

function answer(res, status, cert) {
  if (status !== 200) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"refused"}}');
    return;
  }
  const pem = `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  const out = JSON.stringify({ certificate: pem, serial: '', spiffe_id: SPIFFE });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
  res.end(out);
}

function sign(req, res, body) {
  let csr;
  try {
    csr = walkCsr(Buffer.from(JSON.parse(body).csr.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
  } catch {
    return answer(res, 400);
  }
  if (verify(csr.point, crypto.hash('sha256', csr.info, 'buffer'), csr.signature) !== 1) return answer(res, 400);
  const serial = newSerial();
  const tbs = Buffer.concat([TBS_FIXED, serial, csr.point]);
  crypto.sign('sha256', tbs, caKey, (err, sig) => {
    if (err) return answer(res, 500);
    const cert = Buffer.concat([tbs, sig]);
    if (!store) return answer(res, 200, cert);
    const tokenHash = crypto.hash('sha256', (req.headers.authorization ?? '').slice('Bearer '.length), 'buffer');
    const w = { tokenHash, serial, cert, refused: false, settle: () => answer(res, w.refused ? 401 : 200, cert) };
    store.pending.push(w);
    if (!store.scheduled) {
      store.scheduled = true;
      setImmediate(flush);
    }
  });
}

const server = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => sign(req, res, Buffer.concat(chunks).toString()));
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
