import { existsSync, writeFileSync } from 'node:fs';
import { KryptonError } from '../core/errors.ts';

export const INIT_BACKENDS = ['vault', 'kms', 'secrets-manager'] as const;
export type InitBackend = (typeof INIT_BACKENDS)[number];

/**
 * A commented starter inventory for `backend` on chain id `network` ("473374" testnet, "47337" mainnet): two
 * validators and an RPC node with placeholder addresses, the backend's block with its defaults spelled out, and a
 * `groups:` example. It loads as it is (a unit test proves it for every backend); the operator replaces
 * addresses, the SSH user and the key. No secret is ever in it.
 */
export function starterInventory(backend: InitBackend, network: string): string {
  const store =
    backend === 'vault'
      ? `vault:
  address: https://vault.example.internal:8200   # BAO_ADDR / VAULT_ADDR override this
  # agent_address: https://10.0.0.5:8200        # Vault as the hosts reach it, when not the same
  # ca_cert: /etc/ssl/certs/vault-ca.pem        # or VAULT_CACERT / BAO_CACERT
  kv_mount: secret                              # KV v2
  approle_mount: approle
  agent_mode: daemon                            # daemon: agent keeps running | oneshot: exit_after_auth
  wrap_ttl_seconds: 120                         # response-wrapping TTL of each delivered secret_id
  secret_id_ttl_seconds: 600
  token_period_seconds: 3600
  agent_binary: vault                           # or bao (OpenBao)
  # jwt_per_node: true                          # one Engine-API JWT per node instead of one per network
`
      : `kms:
  key_id: alias/krypton-engine-jwt    # alias, key id or ARN of a symmetric ENCRYPT_DECRYPT CMK
  region: eu-west-1                   # default: AWS_REGION, AWS_DEFAULT_REGION, the profile
  decrypt: host                       # host: each host decrypts with its own AWS identity | operator: the laptop does
  # per_node: true                    # one JWT per node, bound to node=<name> in the encryption context
  # blob_dir: /opt/krypton/secrets    # where hosts keep their copy of the blob (not secret)
`;
  return `# krypton-secrets inventory (written by \`krypton-secrets init --backend ${backend}\`).
# Replace the addresses, the SSH user and the ${backend === 'vault' ? 'Vault address' : 'CMK'}; then:
#   krypton-secrets hosts -i <this file>          # what it selects
#   krypton-secrets plan provision -i <this file> # what would change; changes nothing
# No secret ever goes in an inventory: values live in ${backend === 'vault' ? 'Vault / OpenBao (KV v2)' : backend === 'kms' ? 'KMS-encrypted blobs' : 'Secrets Manager, encrypted under the CMK'}.
network: "${network}"          # chain id, quoted: "473374" testnet, "47337" mainnet
backend: ${backend}

${store}
ssh:
  user: root                  # the SSH user (an unprivileged user needs root rights on the hosts today)
  known_hosts: ~/.ssh/known_hosts   # host keys are verified before any byte is sent
  # identity_file: ~/.ssh/id_ed25519 # else ssh-agent and ~/.ssh/config
  # proxy_jump: bastion.example.internal

defaults:
  deploy_dir: /opt/krypton
  env_file: /opt/krypton/.env       # compose .env whose JWT_PATH line is managed
  jwt:
    mode: "0600"                    # octal modes are quoted strings

nodes:
  val-1:
    role: validator
    address: 10.0.0.11
    # host_key: "SHA256:…"          # optional pin (ssh-keygen -lf); else known_hosts
  val-2:
    role: validator
    address: 10.0.0.12
  rpc-1:
    role: rpc
    address: 10.0.0.21

groups:                             # your own selections, for a play's hosts: and --limit
  canary: [val-1]
`;
}

/** Writes the starter inventory to `file`; refuses (E_USAGE) to overwrite a file that exists. */
export function writeStarterInventory(file: string, backend: InitBackend, network: string): void {
  if (existsSync(file)) throw new KryptonError('E_USAGE', `${file} exists: init never overwrites a file`, { hint: 'pick another path with -o, or remove the file' });
  writeFileSync(file, starterInventory(backend, network), { mode: 0o644, flag: 'wx' });
}
