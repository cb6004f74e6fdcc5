/**
 * The package as an operator gets it (issue 11, "a real package"): `npm pack` builds dist/ (prepare) and packs
 * only what `files` lists; the tarball installed into an empty directory runs from compiled JavaScript with no
 * TypeScript loader: `--version`, `--help`, `playbooks`, and `render` of the shipped example inventory.
 * Needs the npm registry (the tarball's dependencies are installed from it), as `npm ci` does.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../integration/helpers.ts';

const run = promisify(execFile);

describe('npm pack → install in an empty dir → run', () => {
  let work: string;
  let files: string[];
  let bin: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'krypton-pack-'));
    const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: REPO, maxBuffer: 64 << 20 });
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    files = info[0]!.files.map((f) => f.path);
    const app = join(work, 'app');
    await run('mkdir', ['-p', app]);
    await run('npm', ['init', '-y'], { cwd: app });
    await run('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', join(work, info[0]!.filename)], { cwd: app, maxBuffer: 64 << 20 });
    bin = join(app, 'node_modules/.bin/krypton-secrets');
  }, 300_000);

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('packs dist/, the playbooks, README and LICENSE, and no test, source or sandbox file', () => {
    expect(files).toContain('LICENSE');
    expect(files).toContain('README.md');
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('playbooks/provision.yml');
    expect(files.filter((f) => /(^|\/)test\/|\.test\.|^src\/|^\.sandbox|^bench\/|^\.ci\/|\.ts$/.test(f))).toEqual([]);
  });

  it('installs without TypeScript or tsx and answers --version and --help', async () => {
    const app = join(work, 'app');
    const installed = await readdir(join(app, 'node_modules'));
    expect(installed).not.toContain('tsx');
    expect(installed).not.toContain('typescript');
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect((await run(bin, ['--version'])).stdout.trim()).toBe(pkg.version);
    const help = await run(bin, ['--help']);
    expect(help.stdout).toMatch(/Usage: krypton-secrets/);
    expect(help.stdout).toMatch(/\bapply\b/);
  });

  it('lists the shipped playbooks and renders the shipped example inventory from the installed package', async () => {
    const app = join(work, 'app');
    const list = await run(bin, ['playbooks'], { cwd: app });
    expect(list.stdout).toMatch(/^provision\s+Provision every node/m);
    expect(list.stdout).toMatch(/^rotate-jwt\s+/m);
    const out = join(work, 'rendered');
    const inv = join(app, 'node_modules/krypton-secrets/inventory/testnet.yml');
    const r = await run(bin, ['render', '-i', inv, '-o', out], { cwd: app });
    expect(r.stderr).toBe('');
    const rendered = await readdir(out, { recursive: true });
    expect(rendered.some((f) => String(f).endsWith('vault-agent.hcl'))).toBe(true);
  });
});
