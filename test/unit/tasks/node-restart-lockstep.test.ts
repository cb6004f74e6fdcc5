/**
 * Which services node.restart-lockstep restarts, and with what command (src/tasks/node-restart-lockstep.ts
 * `servicesToRestart`, `restartArgv`): pure functions of the host's secrets, their files, and the `loaded`
 * record of what each service read at its last restart by the tool. The task's plans are in
 * test/unit/tasks/node.restart-lockstep/*.yaml.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../../src/inventory/loader.ts';
import type { Inventory, NodeHost } from '../../../src/model/inventory.ts';
import { hostSecrets } from '../../../src/model/layout.ts';
import type { LoadedFact, SecretFileFact } from '../../../src/facts/secrets.ts';
import { restartArgv, servicesToRestart } from '../../../src/tasks/node-restart-lockstep.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const load = (name: string): Inventory => parseInventory(join(FIXTURES, name), readFileSync(join(FIXTURES, name), 'utf8'));
const env = load('env.yml');
const node = (name: string) => env.nodes.find((n) => n.name === name) as NodeHost;

const JWT = 'a'.repeat(64);
const JWT_OLD = 'b'.repeat(64);
const ENV = 'c'.repeat(64);
const ENV_OLD = 'd'.repeat(64);
const file = (sha256: string): SecretFileFact => ({ exists: true, mode: '0600', owner: 'root', group: 'root', sizeBytes: 64, mtime: 1, sha256 });
const files = (jwt = JWT, envSha: string | null = ENV): Record<string, SecretFileFact> => ({ 'engine-jwt': file(jwt), 'node-env': envSha ? file(envSha) : { exists: false } });
/** What each service loaded when val-1 last restarted them: el/cl the JWT, cl and mev-boost the env file. */
const loaded = (o: { jwt?: string; env?: string } = {}): LoadedFact => ({
  el: { 'engine-jwt': o.jwt ?? JWT },
  cl: { 'engine-jwt': o.jwt ?? JWT, 'node-env': o.env ?? ENV },
  'mev-boost': { 'node-env': o.env ?? ENV },
});
const ok = { jwtAccepted: true, jwtPathChanged: false };
const val1 = hostSecrets(env, node('val-1'));

describe('servicesToRestart', () => {
  it('nothing changed: nothing restarts', () => {
    expect(servicesToRestart(val1, files(), loaded(), ok)).toEqual({ services: [], why: [] });
  });

  it('an env change restarts only its readers (cl, mev-boost), not el', () => {
    expect(servicesToRestart(val1, files(JWT, ENV), loaded({ env: ENV_OLD }), ok)).toEqual({
      services: ['cl', 'mev-boost'],
      why: ['node.env changed since cl and mev-boost last started'],
    });
  });

  it('an env file only one reader has not seen yet restarts that reader only', () => {
    const l = loaded();
    l['mev-boost'] = { 'node-env': ENV_OLD };
    expect(servicesToRestart(val1, files(), l, ok).services).toEqual(['mev-boost']);
  });

  it('a JWT change restarts el and cl together, even when the record is stale for one of them only', () => {
    expect(servicesToRestart(val1, files(JWT), loaded({ jwt: JWT_OLD }), ok)).toEqual({ services: ['el', 'cl'], why: ['jwt.hex changed since el and cl last started'] });
    const l = loaded();
    l['cl'] = { ...l['cl']!, 'engine-jwt': JWT_OLD };
    expect(servicesToRestart(val1, files(), l, ok).services).toEqual(['el', 'cl']);
  });

  it('JWT and env changed: el, cl and mev-boost, each once, el and cl first', () => {
    expect(servicesToRestart(val1, files(), loaded({ jwt: JWT_OLD, env: ENV_OLD }), ok).services).toEqual(['el', 'cl', 'mev-boost']);
  });

  it('no record for the JWT (a node provisioned before records, or after a reboot): the Engine API probe decides', () => {
    const noJwtRecord: LoadedFact = { cl: { 'node-env': ENV }, 'mev-boost': { 'node-env': ENV } };
    expect(servicesToRestart(val1, files(), noJwtRecord, ok)).toEqual({ services: [], why: [] });
    expect(servicesToRestart(val1, files(), {}, { jwtAccepted: false, jwtPathChanged: false }).services).toEqual(['el', 'cl', 'mev-boost']);
    expect(servicesToRestart(val1, files(), noJwtRecord, { jwtAccepted: false, jwtPathChanged: false })).toEqual({
      services: ['el', 'cl'],
      why: ['the Engine API does not accept the current JWT yet'],
    });
  });

  it('no record for the env file: its readers restart (they never read it through the tool)', () => {
    const noEnvRecord: LoadedFact = { el: { 'engine-jwt': JWT }, cl: { 'engine-jwt': JWT } };
    expect(servicesToRestart(val1, files(), noEnvRecord, ok).services).toEqual(['cl', 'mev-boost']);
  });

  it('an absent env file restarts nothing for it (there is nothing new to read)', () => {
    expect(servicesToRestart(val1, files(JWT, null), loaded({ env: ENV_OLD }), ok)).toEqual({ services: [], why: [] });
  });

  it('JWT_PATH changed earlier in the play: el and cl, whatever the record says', () => {
    expect(servicesToRestart(val1, files(), loaded(), { jwtAccepted: true, jwtPathChanged: true })).toEqual({ services: ['el', 'cl'], why: ['JWT_PATH changed'] });
  });

  it('val-2 (its env read by el only): an env change restarts el only', () => {
    const ss = hostSecrets(env, node('val-2'));
    expect(servicesToRestart(ss, files(), { el: { 'engine-jwt': JWT, 'node-env': ENV_OLD }, cl: { 'engine-jwt': JWT } }, ok)).toEqual({
      services: ['el'],
      why: ['el.env changed since el last started'],
    });
  });

  it('a node without env-secrets: only the JWT counts', () => {
    const ss = hostSecrets(env, node('rpc-1'));
    expect(servicesToRestart(ss, { 'engine-jwt': file(JWT) }, { el: { 'engine-jwt': JWT }, cl: { 'engine-jwt': JWT } }, ok).services).toEqual([]);
    expect(servicesToRestart(ss, { 'engine-jwt': file(JWT) }, { el: { 'engine-jwt': JWT_OLD }, cl: { 'engine-jwt': JWT_OLD } }, ok).services).toEqual(['el', 'cl']);
  });
});

describe('restartArgv', () => {
  it('the default `docker compose restart el cl` restarts exactly the services asked for', () => {
    expect(restartArgv(node('val-1'), ['el', 'cl'])).toEqual(['docker', 'compose', 'restart', 'el', 'cl']);
    expect(restartArgv(node('val-1'), ['cl', 'mev-boost'])).toEqual(['docker', 'compose', 'restart', 'cl', 'mev-boost']);
  });

  it('a node\'s own command ending in `el cl` gets the same substitution', () => {
    expect(restartArgv(node('val-2'), ['el'])).toEqual(['nodectl', 'restart', 'el']);
  });

  it('any other command runs as it is (it restarts what it restarts)', () => {
    const custom = parseInventory('/f/inv.yml', 'network: "473374"\nnodes:\n  val-1: { role: validator, restart: [systemctl, restart, krypton-node] }\n').nodes[0]!;
    expect(restartArgv(custom, ['cl'])).toEqual(['systemctl', 'restart', 'krypton-node']);
  });
});
