#!/usr/bin/env node
'use strict';
/**
 * horcruxctl — runs the sandbox's Horcrux stand-in (horcrux-standin.cjs) as a daemon. Usage:
 *   horcruxctl start    starts it in its own session; returns 0 once it has written /run/horcrux/horcrux.pid
 *                       (it checked config.yaml and its key files), 1 when it exits (its reason is printed),
 *                       or has not come up within 10 s. Already running: no-op, 0.
 *   horcruxctl stop     SIGTERM, wait (SIGKILL after 10 s); 0 also when not running.
 *   horcruxctl status   exit 0 when running, 3 otherwise.
 * Witness: every start/stop appends `<unix-seconds> <verb>` to /var/log/krypton/horcruxctl.log.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { alive, cmdline, readPid, sleep, terminate, tail } = require('./proc-util.cjs');

const PID_FILE = '/run/horcrux/horcrux.pid';
const LOG_DIR = process.env.KRYPTON_LOG_DIR || '/var/log/krypton';
const LOG = path.join(LOG_DIR, 'horcrux.log');
const WITNESS = path.join(LOG_DIR, 'horcruxctl.log');
const SCRIPT = path.join(__dirname, 'horcrux-standin.cjs');
const START_TIMEOUT_MS = 10_000;

function runningPid() {
  const pid = readPid(PID_FILE);
  return pid && alive(pid) && cmdline(pid).includes('horcrux-standin') ? pid : undefined;
}

function witness(verb) {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  fs.appendFileSync(WITNESS, `${(Date.now() / 1000).toFixed(3)} ${verb}\n`);
}

async function start() {
  witness('start');
  const have = runningPid();
  if (have) {
    console.log(`horcrux: already running (pid ${have})`);
    return 0;
  }
  fs.rmSync(PID_FILE, { force: true });
  const out = fs.openSync(LOG, 'a');
  const child = spawn(process.execPath, [SCRIPT], { cwd: '/', detached: true, stdio: ['ignore', out, 'pipe'] });
  fs.closeSync(out);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let exit;
  child.on('exit', (code, signal) => (exit = { code, signal }));
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until && !exit && readPid(PID_FILE) !== child.pid) await sleep(20);
  if (exit || readPid(PID_FILE) !== child.pid) {
    if (!exit) await terminate(child.pid);
    await sleep(20);
    console.error(stderr.trim() || `horcrux: did not come up within ${START_TIMEOUT_MS / 1000} s\n${tail(LOG, 3)}`);
    return 1;
  }
  child.stderr.destroy();
  child.unref();
  console.log(`horcrux: started (pid ${child.pid})`);
  return 0;
}

async function stop() {
  witness('stop');
  const pid = runningPid();
  if (!pid) {
    console.log('horcrux: not running');
    return 0;
  }
  await terminate(pid, 10_000);
  console.log(`horcrux: stopped (pid ${pid})`);
  return 0;
}

function status() {
  const pid = runningPid();
  console.log(pid ? `horcrux running (pid ${pid})` : 'horcrux stopped');
  return pid ? 0 : 3;
}

const verb = process.argv[2];
const actions = { start, stop, status };
if (!actions[verb] || process.argv.length > 3) {
  console.error('usage: horcruxctl start|stop|status');
  process.exit(2);
}
Promise.resolve(actions[verb]()).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`horcruxctl: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
