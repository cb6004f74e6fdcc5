#!/usr/bin/env node
'use strict';
/**
 * EL stand-in: an execution client's authenticated Engine API on 127.0.0.1:8551 (inside the host's
 * network namespace), with JWT auth as in ethereum/execution-apis src/engine/authentication.md.
 *
 * At start: reads JWT_PATH from /opt/krypton/.env and the secret from that file (strict: 64 lowercase
 * hex); refuses to start (exit 1 missing, 2 malformed) otherwise. Requests without a valid HS256 token
 * (right key, `iat` within ±60 s) get HTTP 401 and a JSON-RPC error body. Answers:
 *   engine_exchangeCapabilities -> params[0] echoed back (the capabilities the caller offers)
 *   eth_chainId -> NETWORK_ID as 0x-hex; net_version -> NETWORK_ID; eth_syncing -> false;
 *   eth_blockNumber -> "0x0"; web3_clientVersion / engine_getClientVersionV1 -> stand-in identity;
 *   anything else -> JSON-RPC error -32601.
 * Logs one line per request to stdout (nodectl appends it to /var/log/krypton/el.log); never a token.
 */
const http = require('node:http');
const { loadEngineSecret, verifyAuthorization, notifyReady, log } = require('./engine-jwt.cjs');

const HOST = '127.0.0.1';
const PORT = Number(process.env.KRYPTON_EL_PORT || 8551);
const MAX_BODY_BYTES = 1 << 20;

const secret = loadEngineSecret('el');
const networkId = Number(secret.env.NETWORK_ID || 473374);

function answer(call) {
  const id = call && call.id !== undefined ? call.id : null;
  const ok = (result) => ({ jsonrpc: '2.0', id, result });
  if (!call || typeof call !== 'object' || typeof call.method !== 'string') {
    return { jsonrpc: '2.0', id, error: { code: -32600, message: 'invalid request' } };
  }
  const params = Array.isArray(call.params) ? call.params : [];
  switch (call.method) {
    case 'engine_exchangeCapabilities':
      return ok(Array.isArray(params[0]) ? params[0] : []);
    case 'eth_chainId':
      return ok('0x' + networkId.toString(16));
    case 'net_version':
      return ok(String(networkId));
    case 'eth_syncing':
      return ok(false);
    case 'eth_blockNumber':
      return ok('0x0');
    case 'web3_clientVersion':
      return ok('krypton-el-standin/v0.1.0/linux/node');
    case 'engine_getClientVersionV1':
      return ok([{ code: 'KS', name: 'krypton-el-standin', version: 'v0.1.0', commit: '00000000' }]);
    default:
      return { jsonrpc: '2.0', id, error: { code: -32601, message: `the method ${call.method} does not exist/is not available` } };
  }
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY_BYTES) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    const auth = verifyAuthorization(secret.key, req.headers.authorization);
    let call;
    try {
      call = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      call = undefined;
    }
    const method = Array.isArray(call) ? 'batch' : (call && call.method) || '-';
    if (!auth.ok) {
      log('el', `401 ${method} ${auth.reason}`);
      return send(res, 401, { jsonrpc: '2.0', id: (call && call.id) ?? null, error: { code: -32001, message: `unauthorized: ${auth.reason}` } });
    }
    if (req.method !== 'POST') {
      log('el', `405 ${req.method}`);
      return send(res, 405, { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'use POST' } });
    }
    if (call === undefined) {
      log('el', '200 - parse error');
      return send(res, 200, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
    }
    log('el', `200 ${method}`);
    send(res, 200, Array.isArray(call) ? call.map(answer) : answer(call));
  });
});

server.on('error', (e) => {
  process.stderr.write(`${new Date().toISOString()} el: cannot listen on ${HOST}:${PORT}: ${e.code || e.message}\n`);
  process.exit(1);
});
server.listen(PORT, HOST, () => {
  log('el', `listening on ${HOST}:${PORT}, jwt ${secret.path} (${secret.fingerprint}), network ${networkId}, pid ${process.pid}`);
  notifyReady();
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    log('el', `${sig}, exiting`);
    server.close();
    process.exit(0);
  });
}
