#!/usr/bin/env node
'use strict';
/**
 * agentctl — runs the host's Vault Agent (the real OpenBao binary, `bao agent`) as a daemon. Usage:
 *   agentctl start    runs `bao agent -config=/run/krypton-secrets/vault-agent.hcl` in its own session
 *                     (setsid), output appended to /var/log/krypton/agent.log. The config (written by
 *                     krypton-secrets, not by the sandbox) must set
 *                     pid_file = "/run/krypton-secrets/agent.pid". Returns 0 once the agent has written
 *                     its pid file, or has exited 0 by itself (exit_after_auth); 1 when it exits non-zero,
 *                     or has written no pid file within 10 s. Already running: no-op, 0.
 *   agentctl stop     SIGTERM to the pid in agent.pid, waits for exit (SIGKILL after 10 s); 0 also when
 *                     not running.
 *   agentctl status   prints the state; exit 0 when running, 3 otherwise.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { alive, readPid, sleep, terminate, tail } = require('./proc-util.cjs');

const CONFIG = '/run/krypton-secrets/vault-agent.hcl';
const PID_FILE = '/run/krypton-secrets/agent.pid';
const LOG_DIR = process.env.KRYPTON_LOG_DIR || '/var/log/krypton';
const LOG = path.join(LOG_DIR, 'agent.log');
const BAO = path.join(__dirname, 'bao');
const START_TIMEOUT_MS = 10_000;

function runningPid() {
  const pid = readPid(PID_FILE);
  return pid && alive(pid) ? pid : undefined;
}

async function start() {
  const have = runningPid();
  if (have) {
    console.log(`agent: already running (pid ${have})`);
    return 0;
  }
  if (!fs.existsSync(CONFIG)) {
    console.error(`agent: no config at ${CONFIG}`);
    return 1;
  }
  fs.rmSync(PID_FILE, { force: true }); // stale: its process is gone
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const out = fs.openSync(LOG, 'a');
  const child = spawn(BAO, ['agent', `-config=${CONFIG}`], { cwd: '/', detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exit;
  child.on('exit', (code, signal) => (exit = { code, signal }));
  child.on('error', (e) => (exit = { code: 127, signal: null, error: e.message }));
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    if (exit) break;
    if (readPid(PID_FILE)) break;
    await sleep(20);
  }
  child.unref();
  if (exit) {
    if (exit.code === 0) {
      console.log('agent: ran and exited 0 (exit_after_auth)');
      return 0;
    }
    console.error(`agent: exited with ${exit.signal || `code ${exit.code}`}${exit.error ? ` (${exit.error})` : ''}\n${tail(LOG, 5)}`);
    return 1;
  }
  if (!readPid(PID_FILE)) {
    await terminate(child.pid);
    console.error(`agent: no pid file ${PID_FILE} within ${START_TIMEOUT_MS / 1000} s (does the config set pid_file?)\n${tail(LOG, 5)}`);
    return 1;
  }
  console.log(`agent: started (pid ${readPid(PID_FILE)})`);
  return 0;
}

async function stop() {
  const pid = runningPid();
  if (!pid) {
    console.log('agent: not running');
    return 0;
  }
  await terminate(pid, 10_000);
  console.log(`agent: stopped (pid ${pid})`);
  return 0;
}

function status() {
  const pid = runningPid();
  console.log(pid ? `agent running (pid ${pid})` : 'agent stopped');
  return pid ? 0 : 3;
}

const verb = process.argv[2];
const actions = { start, stop, status };
if (!actions[verb] || process.argv.length > 3) {
  console.error('usage: agentctl start|stop|status');
  process.exit(2);
}
Promise.resolve(actions[verb]()).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`agentctl: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
