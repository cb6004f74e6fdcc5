import { dirname } from 'node:path/posix';
import type { Action } from '../model/action.ts';
import { KryptonError, scrubText } from '../core/errors.ts';
import { shortFingerprint } from '../core/secret.ts';
import type { Host, Inventory } from '../model/inventory.ts';
import { describeRef, hostSecrets, refKey } from '../model/layout.ts';
import type { SecretStore } from '../model/store.ts';
import { commandLine, type Transport } from '../core/transport.ts';

/** What applying an action may use: the host, its connection, the store, and the run's shared state. */
export interface ApplyEnv {
  host: Host;
  inventory: Inventory;
  transport: Transport;
  store: SecretStore;
  /** What earlier steps did that later plans must know (`rotated:<refKey>` -> new version). */
  runState: Map<string, unknown>;
}

/** The host's words (stderr, else stdout), last 3 lines, scrubbed of secrets and of control characters. */
function tailOf(stderr: string, stdout = ''): string {
  return scrubText((stderr.trim() || stdout.trim()).split('\n').slice(-3).join(' | '))
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?')
    .slice(0, 400);
}

/**
 * Applies one action. Remote actions go through the host's transport (argv quoted; a stored value only on an
 * SFTP write or inside the host's own fetch), laptop-side ones through the store. Values are read from the store
 * here, at apply time, by reference; a value or copy that is no longer the planned version is refused
 * (E_PLAN_CONFLICT). Returns true when it wrote to the store (the run's memo must then be dropped). Throws
 * KryptonError: E_SSH_EXEC for a non-zero exit (with the command and a scrubbed stderr tail, never stdin),
 * E_VAULT_WRAP when a wrapping token was not created where it should have been, the store's errors otherwise.
 */
export async function applyAction(a: Action, env: ApplyEnv): Promise<boolean> {
  const { transport, store } = env;
  switch (a.kind) {
    case 'exec': {
      const res = await transport.exec(a.argv, { ...(a.stdin !== undefined ? { stdin: a.stdin } : {}), ...(a.cwd ? { cwd: a.cwd } : {}) });
      if (res.code !== 0) {
        const tail = tailOf(res.stderr, res.stdout);
        throw new KryptonError('E_SSH_EXEC', `${a.description}: \`${commandLine(a.argv, a.cwd)}\` exited with code ${res.code}${tail ? `: ${tail}` : ''}`, {
          hint: 'fix the cause on the host and run apply again (completed steps are not repeated)',
        });
      }
      return false;
    }
    case 'put':
      await transport.put(a.path, a.content, { mode: parseInt(a.mode, 8), ...(a.owner ? { owner: a.owner } : {}), ...(a.group ? { group: a.group } : {}) });
      return false;
    case 'remove': {
      const argv = a.shred
        ? // A symlink is only unlinked: shredding would overwrite whatever file it points at.
          ['sh', '-c', 'if [ -L "$1" ]; then rm -f -- "$1"; elif command -v shred >/dev/null 2>&1; then shred -u -- "$1"; else rm -f -- "$1"; fi', 'sh', a.path]
        : ['rm', '-f', '--', a.path];
      const res = await transport.exec(argv);
      if (res.code !== 0) throw new KryptonError('E_SSH_EXEC', `${a.description}: removing ${a.path} failed with code ${res.code}`, { hint: 'check the file on the host' });
      return false;
    }
    case 'deliver': {
      const conflict = (now: string) =>
        new KryptonError('E_PLAN_CONFLICT', `${describeRef(a.ref)} changed since it was planned (planned v${a.version} ${shortFingerprint(a.sha256)}, now ${now})`, {
          hint: 'someone wrote a new version meanwhile: run apply again',
        });
      const opts = { mode: parseInt(a.mode, 8), ...(a.owner ? { owner: a.owner } : {}), ...(a.group ? { group: a.group } : {}) };
      if (a.what === 'host-copy') {
        const c = await store.hostFetch?.copy(a.ref);
        if (!c || c.version !== a.version || c.sha256 !== a.sha256) throw conflict(c ? `v${c.version}` : 'none');
        await transport.put(a.path, c.bytes, opts);
        return false;
      }
      const v = await store.current(a.ref);
      if (!v || v.version !== a.version || v.secret.fingerprint() !== a.sha256) throw conflict(v ? `v${v.version}` : 'none');
      await transport.put(a.path, v.secret, opts);
      return false;
    }
    case 'fetch-on-host': {
      const hf = store.hostFetch;
      const s = hostSecrets(env.inventory, env.host).find((x) => x.name === a.name);
      if (!hf || !s) throw new KryptonError('E_INTERNAL', `no host-side fetch for ${a.name} on ${env.host.name}`, { hint: 'report this: the plan named a fetch the store cannot do' });
      const target = await hf.target();
      const res = await transport.exec(hf.fetchArgv(env.inventory, env.host, s, target, a.sha256));
      if (res.code !== 0) throw hf.failure(env.host, s, res.code, res.stderr, target);
      return false;
    }
    case 'store-write': {
      if (a.op === 'mint') {
        const w = await store.mint(a.ref, a.expectVersion);
        if (a.rotation) env.runState.set(`rotated:${refKey(a.ref)}`, w.version);
      } else if (a.op === 'restore') {
        if (a.from === undefined) throw new KryptonError('E_INTERNAL', 'a restore names no version', { hint: 'report this' });
        await store.restore(a.ref, a.from);
      } else {
        const v = await store.current(a.ref);
        if (!v || v.version !== a.expectVersion) throw new KryptonError('E_PLAN_CONFLICT', `${describeRef(a.ref)} changed since it was planned`, { hint: 'run apply again' });
        await store.write(a.ref, v.secret, a.expectVersion);
      }
      return true;
    }
    case 'access-write':
      if (!store.vault) throw new KryptonError('E_INTERNAL', `the ${store.backend} store has no access control to write`, { hint: 'report this' });
      await store.vault.write(a.path, a.body);
      return true;
    case 'deliver-credentials': {
      const vault = store.vault;
      if (!vault) throw new KryptonError('E_INTERNAL', `the ${store.backend} store delivers no agent credentials`, { hint: 'report this' });
      const want = `auth/${a.approleMount}/role/${a.role}/secret-id`;
      const roleId = await vault.roleId(a.approleMount, a.role);
      const wrapped = await vault.wrappedSecretId(a.approleMount, a.role, a.wrapTtlSeconds);
      const looked = await vault.wrapLookup(wrapped.wrappingToken);
      if (looked.creationPath !== want) {
        throw new KryptonError('E_VAULT_WRAP', `the wrapping token (accessor ${wrapped.accessor}) was created at ${looked.creationPath}, not ${want}`, {
          hint: 'someone may be intercepting Vault responses; do not deliver it — investigate before retrying',
        });
      }
      // An interrupted earlier upload may have left temp files (one could hold a wrapping token): clear them.
      await transport.exec(['find', dirname(a.secretIdPath), '-maxdepth', '1', '-name', '.*.krypton-*.tmp', '-delete']);
      await transport.put(a.roleIdPath, roleId, { mode: 0o600, ...(a.owner ? { owner: a.owner } : {}) });
      await transport.put(a.secretIdPath, wrapped.wrappingToken, { mode: 0o600, ...(a.owner ? { owner: a.owner } : {}) });
      return false;
    }
    default: {
      const never: never = a;
      throw new KryptonError('E_INTERNAL', `unknown action ${JSON.stringify((never as Action).kind)}`, { hint: 'report this' });
    }
  }
}

