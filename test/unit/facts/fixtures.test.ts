/**
 * Fact parser fixtures: ONE generated test per `test/unit/facts/<fact>/<case>.yaml` (raw command output in,
 * parsed fact out). Each fixture holds the real stdout of the fact's script (its description says what
 * produced it: the script from src/facts run with `sh -c` on a Debian 12 machine against real files and
 * mounts), an optional `exit` status, `args` for facts whose parser needs what the script was built from (the
 * host secrets of `secret-files`, the links of `boot-step`), and `expect`, the parsed value (deep-equal;
 * `expect: null` means the parser returns undefined, e.g. "nothing mounted there"). The scripts themselves
 * are run against real files in scripts.test.ts.
 *
 * Each case is parsed twice: as the script printed it (with its final newline) and as the executor's
 * section splitter hands it over (src/executor/facts.ts: the lines between two boundary markers, joined
 * without the final newline). Both must give `expect`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { bootStep, parseBootStep } from '../../../src/facts/boot.ts';
import { envValueCopies, hexCopies, parseHexCopies } from '../../../src/facts/copies.ts';
import { dirState, parseDirState } from '../../../src/facts/dir.ts';
import { envKey, fileAt, parseFileFact } from '../../../src/facts/file.ts';
import { gitStatusOf, parseGitFact } from '../../../src/facts/git.ts';
import { kernel, mountAt, parseKernel, parseMount } from '../../../src/facts/mount.ts';
import { agentState, loadedState, parseAgentState, parseLoaded, parseSecretFiles, secretFiles } from '../../../src/facts/secrets.ts';
import type { SecretFormat } from '../../../src/model/layout.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** What a fixture's `args` may hold. */
const argsSchema = z
  .strictObject({
    secrets: z.array(z.strictObject({ name: z.string(), format: z.enum(['hex64', 'env', 'json']) })).optional(),
    links: z.array(z.string()).optional(),
  })
  .optional();
type Args = z.infer<typeof argsSchema>;

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`this fact's fixtures need args.${what}`);
  return v;
};

/** Fixture directory -> the parser it exercises. */
const PARSERS: Record<string, (stdout: string, exitCode: number, args: Args) => unknown> = {
  mount: parseMount,
  kernel: parseKernel,
  file: parseFileFact,
  'agent-state': parseAgentState,
  'secret-files': (stdout, _code, a) => parseSecretFiles(stdout, need(a?.secrets, 'secrets') as { name: string; format: SecretFormat }[]),
  loaded: parseLoaded,
  'dir-state': parseDirState,
  'env-value-copies': (stdout, code) => envValueCopies('/opt/krypton').parse(stdout, code),
  'boot-step': (stdout, _code, a) => parseBootStep(stdout, need(a?.links, 'links')),
  'env-key': (stdout, code) => envKey('/opt/krypton/.env', 'JWT_PATH').parse(stdout, code),
  git: parseGitFact,
};

const fixtureSchema = z.strictObject({
  description: z.string().min(1),
  stdout: z.string(),
  exit: z.number().int().min(0).max(255).default(0),
  args: argsSchema,
  expect: z.unknown(),
});

function runFixture(fact: string, file: string): void {
  const parser = PARSERS[fact];
  if (!parser) throw new Error(`${file}: no parser for fact directory ${fact} (known: ${Object.keys(PARSERS).join(', ')})`);
  const raw: unknown = parse(readFileSync(file, 'utf8'), { strict: true, uniqueKeys: true });
  const r = fixtureSchema.safeParse(raw);
  if (!r.success) throw new Error(`${file}: not a valid fact fixture:\n${z.prettifyError(r.error)}`);
  if (!(raw !== null && typeof raw === 'object' && 'expect' in raw)) throw new Error(`${file}: needs an expect: key (null for "undefined")`);
  const { stdout, exit, args } = r.data;
  const want = r.data.expect === null ? undefined : r.data.expect;
  const asSplit = stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
  for (const input of [stdout, asSplit]) {
    const got = parser(input, exit, args);
    if (want === undefined) expect(got, `${file}: ${JSON.stringify(input)}`).toBeUndefined();
    else expect(got, `${file}: ${JSON.stringify(input)}`).toEqual(want);
  }
}

const dirs = readdirSync(HERE).filter((d) => statSync(join(HERE, d)).isDirectory()).sort();

describe('fact fixtures', () => {
  it('every parser has a fixture directory, and every directory names a parser', () => {
    expect(Object.keys(PARSERS).filter((p) => !dirs.includes(p))).toEqual([]);
    expect(dirs.filter((d) => !(d in PARSERS))).toEqual([]);
  });

  it('the fact scripts hand their output to these parsers', () => {
    expect(mountAt('/run/krypton-secrets').parse).toBe(parseMount);
    expect(kernel().parse).toBe(parseKernel);
    expect(fileAt('/x').parse).toBe(parseFileFact);
    expect(fileAt('/x', { digest: true }).parse).toBe(parseFileFact);
    expect(agentState([{ name: 'engine-jwt' }]).parse).toBe(parseAgentState);
    expect(loadedState().parse).toBe(parseLoaded);
    expect(dirState('/opt/horcrux/keys').parse).toBe(parseDirState);
    expect(envValueCopies('/opt/krypton').parse).toBe(parseHexCopies);
    expect(hexCopies(['/opt/krypton']).parse).toBe(parseHexCopies);
    expect(gitStatusOf('/opt/krypton/jwt.hex').parse).toBe(parseGitFact);
    // secretFiles and bootStep parse with what they were built from: the same result as the named parser.
    const secrets = [{ name: 'engine-jwt', path: '/run/krypton-secrets/jwt.hex', format: 'hex64' as const }, { name: 'node-env', path: '/run/krypton-secrets/node.env', format: 'env' as const }];
    const out = `@f0 600 root root 64 1.5 ${'a'.repeat(64)} hex64\n@f1 absent\n`;
    expect(secretFiles(secrets).parse(out, 0)).toEqual(parseSecretFiles(out, secrets));
    const links = ['/etc/systemd/system/multi-user.target.wants/krypton-secrets-boot.service'];
    expect(bootStep('/usr/local/sbin/krypton-secrets-boot', '/etc/systemd/system/krypton-secrets-boot.service', links).parse('@link0 /x\n', 0)).toEqual(parseBootStep('@link0 /x\n', links));
  });

  for (const fact of dirs) {
    const files = readdirSync(join(HERE, fact)).filter((f) => f.endsWith('.yaml')).sort();
    describe(fact, () => {
      it('has at least one fixture', () => expect(files.length).toBeGreaterThan(0));
      for (const f of files) it(f.replace(/\.yaml$/, ''), () => runFixture(fact, join(HERE, fact, f)));
    });
  }
});
