#!/usr/bin/env node
'use strict';
/**
 * horcrux-standin — the sandbox's Horcrux cosigner (real Horcrux is not built here). It signs nothing; it
 * behaves like Horcrux at start, which is what krypton-secrets is responsible for:
 *   - reads <home>/config.yaml (HORCRUX_HOME, default /opt/horcrux) and takes `keyDir` and the threshold;
 *   - refuses to start (exit 1, reason on stderr and in the log) unless the key dir holds `ecies_keys.json`
 *     and one `<chain-id>_shard.json`, each a regular file with mode 0600, parseable in Horcrux v3's format
 *     (eciesKey 32 bytes whose public key is eciesPubs[id-1]; pubKey an Ed25519 key; privateShard 32 bytes;
 *     the same id in both);
 *   - does not judge where state/ lives (krypton-secrets does); it creates
 *     <home>/state/<chain-id>_priv_validator_state.json if absent, as Horcrux does;
 *   - writes its pid to /run/horcrux/horcrux.pid once ready, logs `<unix-seconds> started id=<N> …` to
 *     /var/log/krypton/horcrux.log, and runs until SIGTERM.
 * Key material never reaches the log: only ids and SHA-256 prefixes.
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const HOME = process.env.HORCRUX_HOME || '/opt/horcrux';
const RUN_DIR = '/run/horcrux';
const PID_FILE = path.join(RUN_DIR, 'horcrux.pid');
const LOG = path.join(process.env.KRYPTON_LOG_DIR || '/var/log/krypton', 'horcrux.log');

function log(line) {
  try {
    fs.appendFileSync(LOG, `${(Date.now() / 1000).toFixed(3)} ${line}\n`);
  } catch {}
}

function fail(reason) {
  log(`refused to start: ${reason}`);
  process.stderr.write(`horcrux: ${reason}\n`);
  process.exit(1);
}

function b64(v, what, len) {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) fail(`${what} is not base64`);
  const b = Buffer.from(v, 'base64');
  if (len !== undefined && !(Array.isArray(len) ? len.includes(b.length) : b.length === len)) fail(`${what} is ${b.length} bytes`);
  return b;
}

function readKeyFile(file) {
  let st;
  try {
    st = fs.lstatSync(file);
  } catch {
    fail(`${file} is missing`);
  }
  if (!st.isFile()) fail(`${file} is not a regular file`);
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  if (mode !== '0600') fail(`${file} has mode ${mode}, expected 0600`);
  let v;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    fail(`${file} is not valid JSON`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(`${file} is not a JSON object`);
  return v;
}

function config() {
  const file = path.join(HOME, 'config.yaml');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    fail(`no ${file}`);
  }
  const keyDir = /^keyDir:\s*"?([^"\n]+)"?\s*$/m.exec(text)?.[1];
  const threshold = Number(/^\s+threshold:\s*(\d+)\s*$/m.exec(text)?.[1]);
  const cosigners = (text.match(/^\s+- shardID:/gm) || []).length;
  if (!keyDir) fail(`${file} has no keyDir`);
  if (!(threshold > cosigners / 2 && threshold <= cosigners)) fail(`${file}: threshold ${threshold} of ${cosigners} cosigners`);
  return { keyDir, threshold, cosigners };
}

function check() {
  const cfg = config();
  const eciesFile = path.join(cfg.keyDir, 'ecies_keys.json');
  const e = readKeyFile(eciesFile);
  const priv = b64(e.eciesKey, 'ecies_keys.json eciesKey', 32);
  if (!Array.isArray(e.eciesPubs) || e.eciesPubs.length !== cfg.cosigners) fail(`ecies_keys.json eciesPubs has ${Array.isArray(e.eciesPubs) ? e.eciesPubs.length : 'no'} entries for ${cfg.cosigners} cosigners`);
  const pubs = e.eciesPubs.map((p, i) => b64(p, `ecies_keys.json eciesPubs[${i}]`, [33, 65]));
  if (!Number.isInteger(e.id) || e.id < 1 || e.id > pubs.length) fail('ecies_keys.json id is out of range');
  const ecdh = crypto.createECDH('secp256k1');
  try {
    ecdh.setPrivateKey(priv);
  } catch {
    fail('ecies_keys.json eciesKey is not a secp256k1 private key');
  }
  const own = crypto.ECDH.convertKey(pubs[e.id - 1], 'secp256k1', undefined, undefined, 'uncompressed');
  if (!Buffer.from(own).equals(ecdh.getPublicKey(null, 'uncompressed'))) fail('ecies_keys.json eciesKey does not match eciesPubs[id-1]');

  const shards = fs.readdirSync(cfg.keyDir).filter((f) => f.endsWith('_shard.json'));
  if (shards.length !== 1) fail(`expected one <chain-id>_shard.json in ${cfg.keyDir}, found ${shards.length}`);
  const s = readKeyFile(path.join(cfg.keyDir, shards[0]));
  b64(s.pubKey, `${shards[0]} pubKey`, [32, 34, 37]);
  b64(s.privateShard, `${shards[0]} privateShard`, 32);
  if (s.id !== e.id) fail(`${shards[0]} id ${s.id} differs from ecies_keys.json id ${e.id}`);
  const chainId = shards[0].slice(0, -'_shard.json'.length);
  const digest = (f) => crypto.createHash('sha256').update(fs.readFileSync(path.join(cfg.keyDir, f))).digest('hex').slice(0, 12);
  return { ...cfg, id: e.id, chainId, fingerprints: `ecies_keys.json sha256:${digest('ecies_keys.json')} ${shards[0]} sha256:${digest(shards[0])}` };
}

function main() {
  const c = check();
  const stateDir = path.join(HOME, 'state');
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const stateFile = path.join(stateDir, `${c.chainId}_priv_validator_state.json`);
  if (!fs.existsSync(stateFile)) fs.writeFileSync(stateFile, JSON.stringify({ height: '0', round: '0', step: 0 }, null, 2) + '\n', { mode: 0o600 });
  fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  fs.writeFileSync(PID_FILE, `${process.pid}\n`);
  log(`started id=${c.id} threshold=${c.threshold}/${c.cosigners} chain=${c.chainId} ${c.fingerprints}`);
  const stop = () => {
    log(`stopped id=${c.id}`);
    try {
      if (fs.readFileSync(PID_FILE, 'utf8').trim() === String(process.pid)) fs.rmSync(PID_FILE, { force: true });
    } catch {}
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setInterval(() => {}, 60_000);
}

main();
