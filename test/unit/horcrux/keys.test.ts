import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import { checkEciesKeyFile, checkShardFile, readAndValidateKeySet, thresholdProblem, validateKeyFiles, type KeySetSpec } from '../../../src/horcrux/keys.ts';
import { generateHorcruxKeys, writeHorcruxKeys, type GeneratedKeySet } from '../../sandbox/horcrux-keys.ts';

const CHAIN = '473374';
const spec = (n = 3, threshold = 2): KeySetSpec => ({ cosigners: Array.from({ length: n }, (_, i) => ({ name: `cosigner-${i + 1}`, shardId: i + 1 })), chainId: CHAIN, threshold });

function filesOf(set: GeneratedKeySet): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const c of set.cosigners) {
    m.set(`cosigner_${c.shardId}/ecies_keys.json`, Buffer.from(c.ecies));
    m.set(`cosigner_${c.shardId}/${CHAIN}_shard.json`, Buffer.from(c.shard));
  }
  return m;
}
const dirsOf = (set: GeneratedKeySet) => set.cosigners.map((c) => `cosigner_${c.shardId}`);

/** Every base64 value of every file: none may appear in a problem. */
function secretsOf(set: GeneratedKeySet): string[] {
  const out: string[] = [];
  for (const c of set.cosigners) {
    const e = JSON.parse(c.ecies) as { eciesKey: string; eciesPubs: string[] };
    const s = JSON.parse(c.shard) as { privateShard: string; pubKey: string };
    out.push(e.eciesKey, s.privateShard, c.ecies, c.shard);
  }
  return out;
}

const set3 = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: CHAIN });

function problemsWith(mutate: (files: Map<string, Buffer>, dirs: string[]) => void, s: KeySetSpec = spec(), set: GeneratedKeySet = set3): string[] {
  const files = filesOf(set);
  const dirs = dirsOf(set);
  mutate(files, dirs);
  const r = validateKeyFiles(files, dirs, s);
  if (r.ok) return [];
  for (const p of r.problems) for (const secret of secretsOf(set)) expect(p).not.toContain(secret);
  return r.problems;
}

const editJson = (files: Map<string, Buffer>, file: string, edit: (v: Record<string, unknown>) => void) => {
  const v = JSON.parse(files.get(file)!.toString()) as Record<string, unknown>;
  edit(v);
  files.set(file, Buffer.from(JSON.stringify(v)));
};

describe('Horcrux key set validation', () => {
  it('accepts a fresh 2-of-3 set in Horcrux v3 format and reports public facts only', () => {
    const r = validateKeyFiles(filesOf(set3), dirsOf(set3), spec());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.set.cosigners.map((c) => [c.cosigner, c.ecies.file, c.shard.file])).toEqual([
      ['cosigner-1', 'cosigner_1/ecies_keys.json', `cosigner_1/${CHAIN}_shard.json`],
      ['cosigner-2', 'cosigner_2/ecies_keys.json', `cosigner_2/${CHAIN}_shard.json`],
      ['cosigner-3', 'cosigner_3/ecies_keys.json', `cosigner_3/${CHAIN}_shard.json`],
    ]);
    expect(r.set.validatorPubKey).toBe(set3.validatorPubKey);
    const text = JSON.stringify(r.set);
    for (const s of secretsOf(set3)) expect(text).not.toContain(s);
  });

  it('accepts 3-of-5 and 1-of-1, and the amino / raw pubKey and compressed eciesPubs forms', () => {
    const five = generateHorcruxKeys({ shards: 5, threshold: 3, chainId: CHAIN });
    expect(validateKeyFiles(filesOf(five), dirsOf(five), spec(5, 3)).ok).toBe(true);
    const one = generateHorcruxKeys({ shards: 1, threshold: 1, chainId: CHAIN });
    expect(validateKeyFiles(filesOf(one), dirsOf(one), spec(1, 1)).ok).toBe(true);
    expect(
      problemsWith((f) => {
        for (let i = 1; i <= 3; i++) {
          editJson(f, `cosigner_${i}/${CHAIN}_shard.json`, (v) => {
            const raw = Buffer.from(String(v.pubKey), 'base64').subarray(2);
            v.pubKey = Buffer.concat([Buffer.from([0x16, 0x24, 0xde, 0x64, 0x20]), raw]).toString('base64');
          });
          editJson(f, `cosigner_${i}/ecies_keys.json`, (v) => {
            v.eciesPubs = (v.eciesPubs as string[]).map((p) => compress(p).toString('base64'));
          });
        }
      }),
    ).toEqual([]);
  });

  const cases: [string, (f: Map<string, Buffer>, d: string[]) => void, RegExp, KeySetSpec?][] = [
    ['a file that is not JSON', (f) => f.set('cosigner_2/ecies_keys.json', Buffer.from('{"eciesKey": "abc",')), /^cosigner_2\/ecies_keys\.json: not valid JSON/],
    ['a JSON array', (f) => f.set('cosigner_1/473374_shard.json', Buffer.from('[1,2]')), /cosigner_1\/473374_shard\.json: expected a JSON object, found an array/],
    ['a missing field', (f) => editJson(f, 'cosigner_3/ecies_keys.json', (v) => delete v.eciesPubs), /cosigner_3\/ecies_keys\.json: missing field "eciesPubs"/],
    ['an unknown field', (f) => editJson(f, 'cosigner_1/ecies_keys.json', (v) => (v.rsaKey = 'AAAA')), /unexpected "rsaKey"/],
    ['a 31-byte ECIES private key', (f) => editJson(f, 'cosigner_1/ecies_keys.json', (v) => (v.eciesKey = Buffer.alloc(31, 7).toString('base64'))), /"eciesKey" is 31 bytes; expected a 32-byte/],
    ['an ECIES key of zero', (f) => editJson(f, 'cosigner_1/ecies_keys.json', (v) => (v.eciesKey = Buffer.alloc(32).toString('base64'))), /not a valid secp256k1 private key/],
    ['a 64-byte ECIES public key', (f) => editJson(f, 'cosigner_2/ecies_keys.json', (v) => ((v.eciesPubs as string[])[1] = Buffer.alloc(64, 1).toString('base64'))), /"eciesPubs\[1\]" is 64 bytes/],
    ['a point off the curve', (f) => editJson(f, 'cosigner_2/ecies_keys.json', (v) => ((v.eciesPubs as string[])[2] = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64'))), /"eciesPubs\[2\]" is not a point on secp256k1/],
    ['non-base64', (f) => editJson(f, 'cosigner_1/473374_shard.json', (v) => (v.privateShard = 'not base64!')), /"privateShard" is not standard padded base64/],
    ['a 33-byte private shard', (f) => editJson(f, 'cosigner_1/473374_shard.json', (v) => (v.privateShard = Buffer.alloc(33, 1).toString('base64'))), /"privateShard" is 33 bytes/],
    ['a bad pubKey length', (f) => editJson(f, 'cosigner_1/473374_shard.json', (v) => (v.pubKey = Buffer.alloc(20, 1).toString('base64'))), /"pubKey" is 20 bytes/],
    ['a bn254 key type', (f) => editJson(f, 'cosigner_1/473374_shard.json', (v) => (v.keyType = 'bn254')), /"keyType" must be "ed25519"/],
    ['a file id that is not its directory', (f) => editJson(f, 'cosigner_2/473374_shard.json', (v) => (v.id = 3)), /cosigner_2\/473374_shard\.json: "id" is 3, but the file is in cosigner_2\//],
    ['an ECIES key that is not its list entry', (f) => {
      const other = JSON.parse(f.get('cosigner_3/ecies_keys.json')!.toString()) as { eciesKey: string };
      editJson(f, 'cosigner_2/ecies_keys.json', (v) => (v.eciesKey = other.eciesKey));
    }, /cosigner_2\/ecies_keys\.json: "eciesKey" does not belong to "eciesPubs\[1\]"/],
    ['ECIES lists from two create-ecies-shards runs', (f) => {
      const other = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: CHAIN });
      f.set('cosigner_3/ecies_keys.json', Buffer.from(other.cosigners[2]!.ecies));
    }, /cosigner_3\/ecies_keys\.json: "eciesPubs" differs from cosigner_1\/ecies_keys\.json's/],
    ['a shard of another validator key', (f) => {
      const other = generateHorcruxKeys({ shards: 3, threshold: 2, chainId: CHAIN });
      f.set('cosigner_2/473374_shard.json', Buffer.from(other.cosigners[1]!.shard));
    }, /cosigner_2\/473374_shard\.json: "pubKey" differs/],
    ['a corrupted shard with the right pubKey', (f) => editJson(f, 'cosigner_3/473374_shard.json', (v) => {
      const b = Buffer.from(String(v.privateShard), 'base64');
      b[0] = b[0]! ^ 1;
      v.privateShard = b.toString('base64');
    }), /cosigner_3\/473374_shard\.json: "privateShard" does not lie on the same sharing/],
    ['a missing cosigner dir', (f, d) => {
      d.splice(1, 1);
      f.delete('cosigner_2/ecies_keys.json');
      f.delete('cosigner_2/473374_shard.json');
    }, /cosigner_2\/: missing \(cosigner-2 has shard_id 2\)/],
    ['an extra cosigner dir', (_f, d) => d.push('cosigner_4'), /cosigner_4\/: no cosigner in the inventory has shard_id 4/],
    ['shards named for another chain', (f) => {
      f.set('cosigner_1/cosmoshub-4_shard.json', f.get('cosigner_1/473374_shard.json')!);
      f.delete('cosigner_1/473374_shard.json');
    }, /cosigner_1\/473374_shard\.json: missing \(found cosmoshub-4_shard\.json: is horcrux\.chain_id in the inventory right\?\)/],
  ];
  for (const [name, mutate, want] of cases) {
    it(`refuses ${name}, naming file and field, never content`, () => {
      const problems = problemsWith(mutate);
      expect(problems.join('\n')).toMatch(want);
    });
  }

  it('refuses a threshold other than the one the shards were dealt with, and an unsafe one', () => {
    expect(problemsWith(() => {}, spec(3, 3))).toEqual(['the 473374_shard.json shards were dealt with threshold 2, the inventory says horcrux.threshold 3']);
    expect(problemsWith(() => {}, spec(3, 1)).join('\n')).toMatch(/inventory: threshold 1 is not more than half of 3 shards/);
    expect(thresholdProblem(2, 4)).toMatch(/not more than half/);
    expect(thresholdProblem(3, 4)).toBeUndefined();
    expect(thresholdProblem(5, 4)).toMatch(/more than the 4 shards/);
  });

  it('refuses inventory shard ids that are not 1..n', () => {
    const s = spec();
    s.cosigners[2]!.shardId = 4;
    expect(problemsWith(() => {}, s).join('\n')).toMatch(/inventory: shard ids must be 1\.\.3/);
  });

  it('single-file checks keep no private bytes and report problems without content', () => {
    const problems: string[] = [];
    const e = checkEciesKeyFile(Buffer.from(set3.cosigners[0]!.ecies), 'x', problems);
    expect(problems).toEqual([]);
    expect(e.id).toBe(1);
    expect(JSON.stringify(e)).not.toContain((JSON.parse(set3.cosigners[0]!.ecies) as { eciesKey: string }).eciesKey);
    const s = checkShardFile(Buffer.from(set3.cosigners[0]!.shard), 'y', problems);
    expect(problems).toEqual([]);
    expect(s.pubKey?.toString('base64')).toBe(set3.validatorPubKey);
  });
});

describe('readAndValidateKeySet (files on disk)', () => {
  const root = mkdtempSync(join(tmpdir(), 'ks-horcrux-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads cosigner_<N>/ and returns the exact bytes as Secrets', async () => {
    const dir = join(root, 'good');
    writeHorcruxKeys(dir, set3, CHAIN);
    const set = await readAndValidateKeySet(dir, spec());
    expect(set.cosigners[1]!.shard.secret.revealText()).toBe(set3.cosigners[1]!.shard);
    expect(String(set.cosigners[1]!.shard.secret)).toMatch(/^\[secret sha256:[0-9a-f]{12}\]$/);
  });

  it('throws one E_INPUT listing every problem, with no content, and refuses symlinks and huge files', async () => {
    const dir = join(root, 'bad');
    writeHorcruxKeys(dir, set3, CHAIN);
    writeFileSync(join(dir, 'cosigner_1', 'ecies_keys.json'), '{"eciesKey":');
    rmSync(join(dir, 'cosigner_2', `${CHAIN}_shard.json`));
    symlinkSync(join(dir, 'cosigner_3', `${CHAIN}_shard.json`), join(dir, 'cosigner_2', `${CHAIN}_shard.json`));
    writeFileSync(join(dir, 'cosigner_3', 'ecies_keys.json'), Buffer.alloc(5000, 32));
    mkdirSync(join(dir, 'cosigner_9'));
    const err = await readAndValidateKeySet(dir, spec()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KryptonError);
    const e = err as KryptonError;
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(/nothing was stored/);
    expect(e.message).toMatch(/cosigner_1\/ecies_keys\.json: not valid JSON/);
    expect(e.message).toMatch(/cosigner_2\/473374_shard\.json: not a regular file \(a symlink\)/);
    expect(e.message).toMatch(/cosigner_3\/ecies_keys\.json: 5000 bytes/);
    expect(e.message).toMatch(/cosigner_9\/: no cosigner in the inventory/);
    for (const s of secretsOf(set3)) expect(e.message).not.toContain(s);
  });

  it('names a directory that cannot be read', async () => {
    await expect(readAndValidateKeySet(join(root, 'nope'), spec())).rejects.toThrow(/cannot read the key directory .*nope \(ENOENT\)/);
  });
});

/** Compressed form of a base64 uncompressed secp256k1 key. */
function compress(b64: string): Buffer {
  const raw = Buffer.from(b64, 'base64');
  const x = raw.subarray(1, 33);
  const yOdd = (raw[64]! & 1) === 1;
  return Buffer.concat([Buffer.from([yOdd ? 3 : 2]), x]);
}
