#!/usr/bin/env node
'use strict';
/**
 * CL stand-in: reads the Engine-API JWT at start exactly like the EL stand-in (same strict rules; exits
 * 1 when missing, 2 when malformed), then once a second calls the EL's engine_exchangeCapabilities on
 * 127.0.0.1:8551 with a freshly signed HS256 token and appends `<unix-seconds.millis> <http-status>` to the
 * witness log /var/log/krypton/cl.log (`000` when the EL cannot be reached). Its own diagnostics go to
 * stdout (nodectl sends them to /var/log/krypton/cl-daemon.log), never into the witness log.
 */
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { LOG_DIR, loadEngineSecret, signToken, notifyReady, log } = require('./engine-jwt.cjs');

const EL_PORT = Number(process.env.KRYPTON_EL_PORT || 8551);
const INTERVAL_MS = 1000;
const CALL_TIMEOUT_MS = 900;
const WITNESS = path.join(LOG_DIR, 'cl.log');
const CAPABILITIES = ['engine_newPayloadV4', 'engine_forkchoiceUpdatedV3', 'engine_getPayloadV4', 'engine_exchangeCapabilities'];

const secret = loadEngineSecret('cl');

/** Resolves to the HTTP status as 3 digits, or "000" when there is no HTTP answer. */
function call() {
  return new Promise((resolve) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: Date.now(), method: 'engine_exchangeCapabilities', params: [CAPABILITIES] });
    const req = http.request(
      {
        host: '127.0.0.1',
        port: EL_PORT,
        method: 'POST',
        path: '/',
        timeout: CALL_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${signToken(secret.key)}`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode).padStart(3, '0')));
        res.on('error', () => resolve(String(res.statusCode).padStart(3, '0')));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve('000'));
    req.end(body);
  });
}

async function tick() {
  const status = await call();
  fs.appendFileSync(WITNESS, `${(Date.now() / 1000).toFixed(3)} ${status}\n`);
}

log('cl', `started, jwt ${secret.path} (${secret.fingerprint}), pid ${process.pid}`);
notifyReady();
tick();
setInterval(tick, INTERVAL_MS);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    log('cl', `${sig}, exiting`);
    process.exit(0);
  });
}
