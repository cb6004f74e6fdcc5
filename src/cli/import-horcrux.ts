import { resolve } from 'node:path';
import { openStore } from '../backends/index.ts';
import { importHorcrux } from '../ops/import-horcrux.ts';
import { importEnv } from '../ops/import-env.ts';
import { loadInventory } from '../inventory/loader.ts';
import type { Inventory } from '../model/inventory.ts';
import type { SecretStore } from '../model/store.ts';

export interface ImportHorcruxFlags {
  inventory: string;
  shredSource?: boolean;
  replace?: boolean;
  json?: boolean;
}

/**
 * `krypton-secrets import-horcrux <dir> -i <inventory> [--shred-source] [--replace] [--json]`: checks every
 * key file in `<dir>/cosigner_<N>/` and stores them in the inventory's store, all or nothing (see
 * src/ops/import-horcrux.ts). Prints one line per file (fingerprints, never content), or with `--json` one object
 * `{"type":"import-horcrux","ok":true,...}`. Returns the exit code; errors are thrown (the CLI maps them).
 */
export async function importHorcruxCommand(dir: string, f: ImportHorcruxFlags, print: (line: string) => void, storeFor?: (inv: Inventory) => Promise<SecretStore>): Promise<number> {
  const inventory = await loadInventory(f.inventory);
  const result = await importHorcrux({
    dir: resolve(dir),
    inventory,
    store: storeFor ? await storeFor(inventory) : await openStore(inventory),
    replace: !!f.replace,
    shredSource: !!f.shredSource,
    ...(f.json ? {} : { print }),
  });
  if (f.json) {
    print(
      JSON.stringify({
        type: 'import-horcrux',
        ok: true,
        chainId: result.chainId,
        threshold: result.threshold,
        validatorPubKey: result.validatorPubKey,
        written: result.files.filter((x) => x.status === 'written').length,
        unchanged: result.files.filter((x) => x.status === 'unchanged').length,
        files: result.files,
        shredded: result.shredded,
      }),
    );
  } else {
    const w = result.files.filter((x) => x.status === 'written').length;
    print(`✔ ${result.files.length} key files stored for ${result.files.length / 2} cosigners: ${w} written, ${result.files.length - w} unchanged${result.shredded.length ? `, ${result.shredded.length} local files shredded` : ''}`);
  }
  return 0;
}

/**
 * `krypton-secrets import-env <file> -i <inventory> [--node <name>] [--replace] [--shred-source] [--json]`: checks
 * every line of a plaintext env file and stores the variables as the node env-secrets (see src/ops/import-env.ts).
 * Prints names and a fingerprint, never a value; `--json` prints one `{"type":"import-env",…}` object.
 */
export async function importEnvCommand(
  file: string,
  f: { inventory: string; node?: string; replace?: boolean; shredSource?: boolean; json?: boolean },
  print: (line: string) => void,
): Promise<number> {
  const inventory = await loadInventory(f.inventory);
  const r = await importEnv({
    file: resolve(file),
    inventory,
    store: await openStore(inventory),
    ...(f.node ? { node: f.node } : {}),
    replace: !!f.replace,
    shredSource: !!f.shredSource,
    ...(f.json ? {} : { print }),
  });
  if (f.json) print(JSON.stringify({ type: 'import-env', ok: true, scope: r.ref.scope, names: r.names, fingerprint: r.value.fingerprint, source: r.value.source, version: r.value.version, status: r.value.status, shredded: r.shredded }));
  else print(`✔ ${r.names.length} env-secrets ${r.value.status} at ${r.value.source} v${r.value.version}${r.shredded ? '; source shredded' : ''}`);
  return 0;
}
