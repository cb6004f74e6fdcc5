// Samples every process's /proc/<pid>/cmdline on this machine over and over (the sandbox hosts share its pid
// namespace, so one sampler sees every host's processes; each is told apart by its network namespace).
// Writes one JSON line per distinct (network namespace, cmdline) seen: {"ns":"net:[…]","c":"<base64 of the raw
// cmdline>"}. On a stdin line "sync <n>" it finishes one more full sweep and writes {"sync":<n>}, so the
// caller knows everything up to then has been reported. Exits when stdin closes. Node builtins only.
'use strict';
const fs = require('node:fs');

const intervalMs = Number(process.argv[2] || 5);
const lastCmdline = new Map(); // pid -> cmdline (latin1) last read
const seen = new Set(); // ns + "\0" + cmdline
let pendingSyncs = [];
let stopping = false;

function sweep() {
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return;
  }
  const alive = new Set();
  for (const e of entries) {
    const c0 = e.charCodeAt(0);
    if (c0 < 48 || c0 > 57) continue;
    alive.add(e);
    let raw;
    try {
      raw = fs.readFileSync(`/proc/${e}/cmdline`);
    } catch {
      continue;
    }
    if (raw.length === 0) continue;
    const text = raw.toString('latin1');
    if (lastCmdline.get(e) === text) continue;
    lastCmdline.set(e, text);
    let ns = '';
    try {
      ns = fs.readlinkSync(`/proc/${e}/ns/net`);
    } catch {
      /* gone meanwhile */
    }
    const key = `${ns}\0${text}`;
    if (seen.has(key)) continue;
    seen.add(key);
    process.stdout.write(`${JSON.stringify({ ns, c: raw.toString('base64') })}\n`);
  }
  for (const pid of lastCmdline.keys()) if (!alive.has(pid)) lastCmdline.delete(pid);
}

function loop() {
  const syncs = pendingSyncs;
  pendingSyncs = [];
  sweep();
  for (const n of syncs) process.stdout.write(`${JSON.stringify({ sync: n })}\n`);
  if (!stopping) setTimeout(loop, intervalMs);
}

let buf = '';
process.stdin.on('data', (d) => {
  buf += d.toString();
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    const m = /^sync (\d+)$/.exec(line);
    if (m) pendingSyncs.push(Number(m[1]));
  }
});
process.stdin.on('end', () => {
  stopping = true;
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
loop();
