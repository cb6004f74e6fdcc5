/**
 * The Docker runtime's images, built here with neither a registry nor a daemon: each one is a
 * docker-archive tarball (the `docker save` format that `docker load` reads: `manifest.json`, an image
 * config `<sha256>.json`, one layer `<diff-id>/layer.tar`) FROM scratch, made with GNU tar from files of
 * this machine, and cached in `<cache>/images/<name>-<key>.tar`, where key = a hash of every input (file
 * contents; for binaries over 1 MiB their path, size and mtime) and of the image config. A sandbox-up
 * with unchanged inputs reuses the tarball and only runs `docker load` on each host.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SandboxError, runOk } from './proc.ts';

/** One file of an image: `at` = absolute path inside the image; `from` = file on this machine, or `content`. */
export type ImageFile = { at: string; mode?: number } & ({ from: string } | { content: string });

export interface ImageSpec {
  /** Short name, used in the cache file name, e.g. "el". */
  name: string;
  /** Repository:tag the loaded image gets, e.g. "krypton-sandbox/el:geth-v1.17.10". */
  tag: string;
  files: ImageFile[];
  /** Empty dirs to create (absolute, mode 0755; /tmp gets 1777). */
  dirs?: string[];
  /** The image config's `config` object (Entrypoint, Cmd, Env, WorkingDir, Labels …), as docker's image spec names them. */
  config: Record<string, unknown>;
}

const BIG_FILE_BYTES = 1 << 20;

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A stable hash of the spec's inputs (the cache key). */
export function imageKey(spec: ImageSpec): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ tag: spec.tag, dirs: spec.dirs ?? [], config: spec.config, format: 1 }));
  for (const f of spec.files) {
    h.update(`\0${f.at}\0${f.mode ?? ''}\0`);
    if ('content' in f) h.update(f.content);
    else {
      const st = statSync(f.from);
      h.update(st.size > BIG_FILE_BYTES ? `${realpathSync(f.from)}:${st.size}:${st.mtimeMs}` : readFileSync(f.from));
    }
  }
  return h.digest('hex').slice(0, 16);
}

const goArch = (): string => ({ x64: 'amd64', arm64: 'arm64' })[process.arch as 'x64' | 'arm64'] ?? process.arch;

/**
 * Returns the path of the spec's docker-archive tarball under `<cacheDir>/images/`, building it when it
 * is not cached (written to a temp name and renamed, so a half-written tarball is never used; older
 * tarballs of the same name are removed).
 */
export async function ensureImageTar(spec: ImageSpec, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, 'images');
  const key = imageKey(spec);
  const out = join(dir, `${spec.name}-${key}.tar`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const work = mkdtempSync(join(dir, `.build-${spec.name}-`));
  try {
    const root = join(work, 'rootfs');
    mkdirSync(root, { mode: 0o755 });
    for (const d of spec.dirs ?? []) {
      mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
      if (d === '/tmp') chmodSync(join(root, d), 0o1777);
    }
    for (const f of spec.files) {
      const dest = join(root, f.at);
      mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
      if ('content' in f) writeFileSync(dest, f.content);
      else copyFileSync(realpathSync(f.from), dest);
      chmodSync(dest, f.mode ?? ('content' in f ? 0o644 : statSync(f.from).mode & 0o7777));
    }
    // One layer, reproducible: sorted names, numeric root ownership, mtime 0.
    const tarFlags = ['--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--format=gnu'];
    const layerTmp = join(work, 'layer.tar');
    await runOk('tar', [...tarFlags, '-C', root, '-cf', layerTmp, ...readdirSync(root).sort()], { timeoutMs: 300_000 });
    const diffId = createHash('sha256').update(readFileSync(layerTmp)).digest('hex');
    const archive = join(work, 'archive');
    mkdirSync(join(archive, diffId), { recursive: true });
    renameSync(layerTmp, join(archive, diffId, 'layer.tar'));
    const created = '1970-01-01T00:00:00Z';
    const config = JSON.stringify({
      architecture: goArch(),
      os: 'linux',
      created,
      config: spec.config,
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created, created_by: `krypton-sandbox test/sandbox/images.ts (${spec.name}, FROM scratch)` }],
    });
    const configName = `${sha256(config)}.json`;
    writeFileSync(join(archive, configName), config);
    writeFileSync(join(archive, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [spec.tag], Layers: [`${diffId}/layer.tar`] }]));
    const tmpOut = join(work, 'image.tar');
    await runOk('tar', [...tarFlags, '-C', archive, '-cf', tmpOut, 'manifest.json', configName, diffId], { timeoutMs: 300_000 });
    renameSync(tmpOut, out);
  } catch (e) {
    throw e instanceof SandboxError ? e : new SandboxError(`building image ${spec.tag}: ${(e as Error).message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  for (const old of readdirSync(dir)) if (old.startsWith(`${spec.name}-`) && old.endsWith('.tar') && join(dir, old) !== out) rmSync(join(dir, old), { force: true });
  return out;
}

/**
 * The shared libraries a dynamically linked binary needs, from `ldd` (absolute paths as the loader
 * finds them, e.g. /lib/x86_64-linux-gnu/libc.so.6, and the loader itself /lib64/ld-linux-x86-64.so.2).
 */
export async function sharedLibs(binary: string): Promise<string[]> {
  const r = await runOk('ldd', [binary]);
  const out = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.add(m[1]!);
  }
  return [...out].sort();
}
