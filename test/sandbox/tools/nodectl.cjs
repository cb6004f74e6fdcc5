#!/usr/bin/env node
'use strict';
/**
 * nodectl — the sandbox node's compose-like service manager (stands in for `docker compose` in
 * /opt/krypton). Usage:
 *   nodectl start|stop|restart [el] [cl]   (no service = both)
 *   nodectl status [el] [cl]               (prints each; exit 0 when all listed run, 3 otherwise)
 * Every start/stop/restart call first appends `<unix-seconds.millis> <verb> <services…>` to the witness log
 * /var/log/krypton/nodectl.log. Services run as daemons in their own session (setsid), tracked by
 * /run/krypton-node/<svc>.pid (tmpfs: gone after a reboot), output appended to
 * /var/log/krypton/el.log and cl-daemon.log. A start waits (up to 5 s) for the service's READY
 * notification (the EL sends it once bound to 127.0.0.1:8551) and exits 1 when a service does not come
 * up, e.g. when it refuses its JWT. `restart` of a stopped service starts it. Services are always
 * handled in dependency order: stop cl before el, start el before cl.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { alive, cmdline, readPid, terminate, tail } = require('./proc-util.cjs');

const RUN_DIR = '/run/krypton-node';
const LOG_DIR = process.env.KRYPTON_LOG_DIR || '/var/log/krypton';
const READY_TIMEOUT_MS = 5000;
const SERVICES = {
  el: { script: path.join(__dirname, 'krypton-el.cjs'), log: path.join(LOG_DIR, 'el.log') },
  cl: { script: path.join(__dirname, 'krypton-cl.cjs'), log: path.join(LOG_DIR, 'cl-daemon.log') },
};
const ORDER = ['el', 'cl'];

const pidFile = (svc) => path.join(RUN_DIR, `${svc}.pid`);

/** Pid of the running service, or undefined (a stale pid file is removed). */
function runningPid(svc) {
  const pid = readPid(pidFile(svc));
  if (pid && alive(pid) && cmdline(pid).includes(path.basename(SERVICES[svc].script))) return pid;
  if (pid !== undefined) fs.rmSync(pidFile(svc), { force: true });
  return undefined;
}

async function start(svc) {
  const have = runningPid(svc);
  if (have) {
    console.log(`${svc}: already running (pid ${have})`);
    return true;
  }
  fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  const out = fs.openSync(SERVICES[svc].log, 'a');
  const child = spawn(process.execPath, [SERVICES[svc].script], {
    cwd: '/',
    detached: true, // setsid(): own session, survives the SSH session that ran nodectl
    stdio: ['ignore', out, out, 'pipe'],
    env: { ...process.env, KRYPTON_NOTIFY_FD: '3' },
  });
  fs.closeSync(out);
  fs.writeFileSync(pidFile(svc), `${child.pid}\n`);
  const outcome = await new Promise((resolve) => {
    let buf = '';
    const timer = setTimeout(() => resolve('did not report ready within 5 s'), READY_TIMEOUT_MS);
    child.stdio[3].on('data', (d) => {
      buf += d;
      if (buf.includes('READY')) {
        clearTimeout(timer);
        resolve('ready');
      }
    });
    child.stdio[3].on('error', () => {});
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(`exited with ${signal || `code ${code}`}`);
    });
  });
  child.stdio[3].destroy();
  child.unref();
  if (outcome === 'ready') {
    console.log(`${svc}: started (pid ${child.pid})`);
    return true;
  }
  if (alive(child.pid)) await terminate(child.pid);
  fs.rmSync(pidFile(svc), { force: true });
  console.error(`${svc}: failed to start: ${outcome}\n${tail(SERVICES[svc].log, 3)}`);
  return false;
}

async function stop(svc) {
  const pid = runningPid(svc);
  if (!pid) {
    console.log(`${svc}: not running`);
    return true;
  }
  await terminate(pid);
  fs.rmSync(pidFile(svc), { force: true });
  console.log(`${svc}: stopped (pid ${pid})`);
  return true;
}

async function main(argv) {
  const [verb, ...rest] = argv;
  const usage = 'usage: nodectl start|stop|restart|status [el] [cl]';
  if (!['start', 'stop', 'restart', 'status'].includes(verb)) {
    console.error(usage);
    return 2;
  }
  const unknown = rest.filter((s) => !ORDER.includes(s));
  if (unknown.length) {
    console.error(`nodectl: unknown service(s) ${unknown.join(' ')}; ${usage}`);
    return 2;
  }
  const services = rest.length ? ORDER.filter((s) => rest.includes(s)) : ORDER;
  if (verb === 'status') {
    let all = true;
    for (const svc of services) {
      const pid = runningPid(svc);
      all = all && !!pid;
      console.log(pid ? `${svc} running (pid ${pid})` : `${svc} stopped`);
    }
    return all ? 0 : 3;
  }
  fs.mkdirSync(LOG_DIR, { recursive: true });
  fs.appendFileSync(path.join(LOG_DIR, 'nodectl.log'), `${(Date.now() / 1000).toFixed(3)} ${verb} ${services.join(' ')}\n`);
  let ok = true;
  if (verb === 'stop' || verb === 'restart') {
    for (const svc of [...services].reverse()) ok = (await stop(svc)) && ok;
  }
  if (verb === 'start' || verb === 'restart') {
    for (const svc of services) ok = (await start(svc)) && ok;
  }
  return ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`nodectl: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
