import type { Host, Inventory } from '../model/inventory.ts';
import { ConnectionPool, resolveTarget } from '../transport/ssh.ts';
import { loadSshConfig, parseSshConfig, expandTilde, type LoadedSshConfig } from '../transport/ssh-config.ts';
import type { Transport } from '../core/transport.ts';

/** Opens each inventory host's one SSH connection on demand (inventory settings over ssh_config over defaults). */
export interface Connector {
  get(host: Host): Promise<Transport>;
  closeAll(): Promise<void>;
}

/**
 * A connector for `inv`: resolves each host's target once (inventory `ssh:` defaults, the host's own
 * overrides, then `~/.ssh/config` or `ssh.config`; `none` ignores ssh_config) and keeps one pooled
 * connection per host. Host keys are checked against `ssh.known_hosts` or the host's pinned `host_key`
 * before anything is sent; `acceptNew` records keys never seen before (never a changed one).
 */
export function makeConnector(
  inv: Inventory,
  opts: { acceptNew: boolean; onWarning?: (message: string) => void; onHostKeyAccepted?: (info: { host: string; file: string; fingerprint: string; keyType: string }) => void },
): Connector {
  const pool = new ConnectionPool(opts.onHostKeyAccepted ? { onHostKeyAccepted: opts.onHostKeyAccepted } : {});
  let config: Promise<LoadedSshConfig> | undefined;
  const loadConfig = (): Promise<LoadedSshConfig> => {
    config ??=
      inv.ssh.config === 'none'
        ? Promise.resolve({ config: parseSshConfig(''), files: [], warnings: [] })
        : loadSshConfig(inv.ssh.config ? expandTilde(inv.ssh.config) : undefined).then((c) => {
            for (const w of c.warnings) opts.onWarning?.(`ssh_config: ${w}`);
            return c;
          });
    return config;
  };
  return {
    async get(host: Host): Promise<Transport> {
      const target = await resolveTarget(
        {
          name: host.name,
          address: host.conn.address,
          port: host.conn.port ?? inv.ssh.port,
          user: host.conn.user ?? inv.ssh.user,
          identityFile: maybeTilde(host.conn.identityFile ?? inv.ssh.identityFile),
          hostKey: host.conn.hostKey,
          knownHostsFile: maybeTilde(inv.ssh.knownHosts),
          proxyJump: host.conn.proxyJump ?? inv.ssh.proxyJump,
          acceptNew: opts.acceptNew,
          connectTimeoutMs: inv.ssh.connectTimeoutSeconds * 1000,
          useAgent: inv.ssh.useAgent,
        },
        { sshConfig: await loadConfig() },
      );
      return pool.get(target);
    },
    closeAll: () => pool.closeAll(),
  };
}

function maybeTilde(p: string | undefined): string | undefined {
  return p === undefined ? undefined : expandTilde(p);
}
