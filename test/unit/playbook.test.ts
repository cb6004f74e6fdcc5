/**
 * Playbook loading: every playbook in the repo loads; bad playbooks are refused with E_PLAYBOOK at the
 * `file:line:col` of the offending entry, naming what is known.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import { loadPlaybook } from '../../src/playbook/loader.ts';
import { RENAMED_TASKS, TASKS } from '../../src/tasks/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = mkdtempSync(join(tmpdir(), 'krypton-playbook-test-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

let n = 0;
function write(text: string): string {
  const f = join(TMP, `pb-${++n}.yml`);
  writeFileSync(f, text);
  return f;
}

async function refusal(text: string): Promise<{ e: KryptonError; file: string }> {
  const file = write(text);
  try {
    await loadPlaybook(file);
  } catch (err) {
    expect(err).toBeInstanceOf(KryptonError);
    const e = err as KryptonError;
    expect(e.code).toBe('E_PLAYBOOK');
    expect(e.hint).toBeTruthy();
    return { e, file };
  }
  throw new Error(`expected loadPlaybook to refuse:\n${text}`);
}

const KNOWN = `known tasks: ${[...TASKS.keys()].join(', ')}`;

describe("the repo's playbooks load", () => {
  const files = readdirSync(join(ROOT, 'playbooks')).filter((f) => f.endsWith('.yml'));
  it('playbooks/ holds provision.yml', () => expect(files).toContain('provision.yml'));
  for (const f of files) {
    it(f, async () => {
      const pb = await loadPlaybook(join(ROOT, 'playbooks', f));
      expect(pb.file).toBe(join(ROOT, 'playbooks', f));
      expect(pb.plays.length).toBeGreaterThan(0);
      for (const play of pb.plays) {
        expect(play.steps.length).toBeGreaterThan(0);
        for (const s of play.steps) expect(TASKS.get(s.task.id)).toBe(s.task);
      }
    });
  }

  /** The steps the executor runs for a store of `delivery` (src/executor/run.ts: a task's `delivery`, default all). */
  const stepsFor = (pb: Awaited<ReturnType<typeof loadPlaybook>>, delivery: 'agent' | 'host-fetch' | 'operator') =>
    pb.plays[0]!.steps.filter((s) => !s.task.delivery || s.task.delivery.includes(delivery)).map((s) => s.task.id);

  it('provision.yml: one playbook for every store — the steps each delivery runs, in order; params validated with defaults, validator budget 1', async () => {
    const pb = await loadPlaybook(join(ROOT, 'playbooks', 'provision.yml'));
    const [play] = pb.plays;
    expect(play!.maxValidatorsDown).toBe(1);
    expect(play!.serial).toEqual([]);
    expect(stepsFor(pb, 'agent')).toEqual([
      'secret.seed',
      'vault.policy',
      'vault.approle',
      'mount.tmpfs',
      'agent.render-config',
      'vault.deliver-secret-id',
      'agent.start',
      'node.set-jwt-path',
      'node.restart-lockstep',
      'engine.verify-auth',
    ]);
    expect(stepsFor(pb, 'host-fetch')).toEqual(['secret.seed', 'mount.tmpfs', 'secret.put-host-copy', 'secret.fetch-on-host', 'kms.install-boot-step', 'node.set-jwt-path', 'node.restart-lockstep', 'engine.verify-auth']);
    expect(stepsFor(pb, 'operator')).toEqual(['secret.seed', 'mount.tmpfs', 'secret.fetch-on-host', 'node.set-jwt-path', 'node.restart-lockstep', 'engine.verify-auth']);
    // mount.tmpfs without a path mounts every tmpfs dir the host's secrets need
    expect(play!.steps.find((s) => s.task.id === 'mount.tmpfs')!.params).toEqual({ size_bytes: 1048576, mode: '0700' });
    expect(play!.steps.find((s) => s.task.id === 'kms.install-boot-step')!.params).toEqual({ before: ['docker.service'], tmpfs_size_bytes: 1048576, attempts: 5, unit_dir: '/etc/systemd/system' });
    expect(play!.steps[0]!.params).toEqual({});
  });

  it('cosigner-bringup.yml: the same secret tasks as nodes, for cosigners, one at a time', async () => {
    const pb = await loadPlaybook(join(ROOT, 'playbooks', 'cosigner-bringup.yml'));
    expect(pb.plays[0]).toMatchObject({ hosts: 'cosigners', serial: [1] });
    expect(stepsFor(pb, 'agent')).toEqual(['horcrux.render-config', 'secret.seed', 'vault.policy', 'vault.approle', 'mount.tmpfs', 'agent.render-config', 'vault.deliver-secret-id', 'agent.start', 'horcrux.start', 'horcrux.verify-keys']);
    expect(stepsFor(pb, 'host-fetch')).toEqual(['horcrux.render-config', 'secret.seed', 'mount.tmpfs', 'secret.put-host-copy', 'secret.fetch-on-host', 'horcrux.start', 'horcrux.verify-keys']);
    for (const s of pb.plays[0]!.steps) expect(s.task.appliesTo, s.task.id).not.toBe('node');
  });
});

describe('loadPlaybook: shapes it accepts', () => {
  it('a string entry, a map entry with name, a map entry with null params; serial list; defaults', async () => {
    const pb = await loadPlaybook(
      write(`- name: p
  hosts: [val-1, val-2]
  serial: [1, "50%"]
  max_validators_down: 2
  tasks:
    - name: the tmpfs
      mount.tmpfs: { size_bytes: 65536 }
    - mount.tmpfs:
    - agent.start
`),
    );
    const [play] = pb.plays;
    expect(play).toMatchObject({ name: 'p', hosts: ['val-1', 'val-2'], serial: [1, '50%'], maxValidatorsDown: 2, maxRpcDown: Number.MAX_SAFE_INTEGER });
    expect(play!.steps.map((s) => [s.name, s.task.id, s.params])).toEqual([
      ['the tmpfs', 'mount.tmpfs', { size_bytes: 65536, mode: '0700' }],
      [TASKS.get('mount.tmpfs')!.summary, 'mount.tmpfs', { size_bytes: 1048576, mode: '0700' }],
      [TASKS.get('agent.start')!.summary, 'agent.start', {}],
    ]);
  });

  it('serial as a single value becomes a one-entry list', async () => {
    const pb = await loadPlaybook(write('- name: p\n  hosts: validators\n  serial: "25%"\n  tasks: [mount.tmpfs]\n'));
    expect(pb.plays[0]!.serial).toEqual(['25%']);
  });
});

describe('loadPlaybook: bad playbooks are refused at file:line:col', () => {
  it('unknown task id (string entry): names line:col and lists the known tasks', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs\n    - mount.tmpf\n');
    expect(e.message).toBe(`${file}:5:7: unknown task "mount.tmpf"`);
    expect(e.hint).toBe(KNOWN);
  });

  describe('a task id of an earlier release is refused, naming the task that replaces it', () => {
    it('every renamed id is gone from TASKS, and every replacement is a task', () => {
      expect(RENAMED_TASKS.size).toBeGreaterThan(0);
      for (const [old, now] of RENAMED_TASKS) {
        expect(TASKS.has(old), old).toBe(false);
        expect(TASKS.has(now), `${old} -> ${now}`).toBe(true);
      }
    });

    for (const [old, now] of RENAMED_TASKS) {
      it(`${old} -> ${now}`, async () => {
        const asString = await refusal(`- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs\n    - ${old}\n`);
        expect(asString.e.message).toBe(`${asString.file}:5:7: task "${old}" was replaced by "${now}" (one task per concern, for nodes and cosigners alike)`);
        expect(asString.e.hint).toBe(`write ${now} instead (see playbooks/ for the current playbooks)`);
        // as a map entry with params (the params are not looked at: the id is refused first)
        const asMap = await refusal(`- name: p\n  hosts: all\n  tasks:\n    - name: old step\n      ${old}: { timeout_seconds: 30 }\n`);
        expect(asMap.e.message).toBe(`${asMap.file}:5:7: task "${old}" was replaced by "${now}" (one task per concern, for nodes and cosigners alike)`);
        expect(asMap.e.hint).toContain(now);
      });
    }
  });

  it('unknown task id (map entry): points at the key', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - name: x\n      mount.tmpf: { size_bytes: 1 }\n');
    expect(e.message).toBe(`${file}:5:7: unknown task "mount.tmpf"`);
    expect(e.hint).toBe(KNOWN);
  });

  it('bad param: mount.tmpfs size_bytes "big" -> line:col of that value', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs:\n        path: /run/krypton-secrets\n        size_bytes: big\n');
    const [head, line, ...rest] = e.message.split('\n');
    expect(head).toBe(`playbook ${file} is not valid:`);
    expect(line!.trim()).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:21: 0\\.tasks\\.0\\.mount\\.tmpfs\\.size_bytes: .*expected number`));
    expect(rest).toEqual([]);
  });

  it('bad param value below the minimum, in the second play', async () => {
    const { e, file } = await refusal(
      '- name: a\n  hosts: nodes\n  tasks: [mount.tmpfs]\n- name: b\n  hosts: rpc\n  tasks:\n    - node.restart-lockstep: { timeout_seconds: 0 }\n',
    );
    expect(e.message.split('\n')[1]!.trim()).toMatch(new RegExp(`^.*${'pb-'}\\d+\\.yml:7:49: 1\\.tasks\\.0\\.node\\.restart-lockstep\\.timeout_seconds: Too small: expected number to be >=1$`));
    expect(e.message).toContain(file);
  });

  it('mount.tmpfs mode that lets the group write or others in is refused; 0750 / 0710 are allowed (issue 10)', async () => {
    for (const m of ['0770', '0777', '0755', '0701', '0730', '0600']) {
      const { e, file } = await refusal(`- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { mode: "${m}" }\n`);
      expect(e.code, m).toBe('E_PLAYBOOK');
      expect(e.message.split('\n')[1]!.trim(), m).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:28: 0\\.tasks\\.0\\.mount\\.tmpfs\\.mode: expected "0700", "0750" or "0710": `));
    }
    const { e } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { mode: "0770" }\n');
    expect(e.message).toContain('(0770 lets the group write)');
    for (const m of ['0700', '0750', '0710']) {
      const file = write(`- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: { mode: "${m}" }\n`);
      expect((await loadPlaybook(file)).plays[0]!.steps[0]!.params, m).toMatchObject({ mode: m });
    }
  });

  it('unknown param key points at the key and lists the task\'s params', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - agent.start: { timeout: 5 }\n');
    expect(e.message.split('\n')[1]!.trim()).toBe(`${file}:4:22: 0.tasks.0.agent.start.timeout: unknown key (expected one of: timeout_seconds, exec_timeout_seconds)`);
  });

  it('two task ids in one entry', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - mount.tmpfs: {}\n      agent.start: {}\n');
    expect(e.message).toBe(`${file}:4:7: a task entry needs exactly one task id (and optionally name:), found mount.tmpfs, agent.start`);
    expect(e.hint).toContain(KNOWN);
  });

  it('an entry with only a name', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks:\n    - name: just a name\n');
    expect(e.message).toBe(`${file}:4:7: a task entry needs exactly one task id (and optionally name:), found none`);
  });

  it('unknown play key', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  serail: 1\n  tasks: [mount.tmpfs]\n');
    expect(e.message.split('\n')[1]!.trim()).toBe(`${file}:3:3: 0.serail: unknown key (expected one of: name, hosts, serial, max_validators_down, max_rpc_down, tasks)`);
  });

  it('a bad serial percentage', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  serial: "0%"\n  tasks: [mount.tmpfs]\n');
    expect(e.message.split('\n')[1]!.trim()).toBe(`${file}:3:11: 0.serial: expected a percentage such as "25%"`);
  });

  it('a mapping instead of a list of plays', async () => {
    const { e, file } = await refusal('name: p\nhosts: nodes\n');
    expect(e.message.split('\n')[1]!.trim()).toBe(`${file}:1:1: (top level): expected a list of plays (each with name, hosts, tasks)`);
  });

  it('a play without tasks', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  tasks: []\n');
    expect(e.message.split('\n')[1]!.trim()).toMatch(new RegExp(`^.*:3:10: 0\\.tasks: `));
    expect(e.message).toContain(file);
  });

  it('duplicate key in a play', async () => {
    const { e, file } = await refusal('- name: p\n  hosts: nodes\n  hosts: rpc\n  tasks: [mount.tmpfs]\n');
    expect(e.message).toBe(`${file}:3:3: duplicate key (each key may appear once in a mapping)`);
  });

  it('a missing file', async () => {
    await expect(loadPlaybook(join(TMP, 'nope.yml'))).rejects.toMatchObject({ code: 'E_PLAYBOOK', message: `cannot read ${join(TMP, 'nope.yml')}: ENOENT` });
  });
});
