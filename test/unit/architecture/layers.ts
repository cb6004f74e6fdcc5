/**
 * The layer map of `src/`: each top-level folder of `src/` and the other folders its files may import.
 * A folder may always import files in its own folder (subfolders included); `'*'` means any folder.
 * Read by test/unit/architecture.test.ts; a folder of `src/` missing here fails that test, so a new
 * folder has to be placed in the layering on purpose. Order is bottom (pure) to top (entry points).
 */
export type LayerMap = Readonly<Record<string, readonly string[] | '*'>>;

export const LAYERS = {
  // Shared vocabulary with no dependencies: Task/Action types, KryptonError, events, Secret, YAML source.
  core: [],
  // The typed inventory/config model every layer reads: types and defaults, no loading, no I/O (folder to come).
  model: ['core'],
  // Pure Horcrux formats: key files, ed25519, Shamir shards; knows nothing of hosts or backends.
  horcrux: ['core', 'model'],
  // Loads and validates the inventory file into the model (schema, YAML, defaults in one place).
  inventory: ['core', 'model', 'horcrux'],
  // Parse raw command output from a host into typed facts; never runs anything itself.
  facts: ['core', 'model'],
  // Pure renderers of files we place on hosts (Vault Agent config, KMS host script, IAM policy).
  render: ['core', 'model', 'horcrux'],
  // SSH connections, exec and upload; the only place that knows ssh2 (with backends for SDKs).
  transport: ['core', 'model'],
  // Adapters for the secret stores (Vault/OpenBao, AWS KMS, Secrets Manager): SDKs live here.
  backends: ['core', 'model'],
  // Task definitions: typed params, declared facts, a pure plan(); no transport or backend calls.
  tasks: ['core', 'model', 'horcrux', 'inventory', 'facts', 'render'],
  // Loads playbooks (ordered task lists) and checks them against the task registry.
  playbook: ['core', 'model', 'inventory', 'tasks'],
  // Runs plans on hosts: gathers facts, applies actions, waves, concurrency, backends and transport.
  executor: ['core', 'model', 'horcrux', 'inventory', 'facts', 'render', 'tasks', 'playbook', 'transport', 'backends'],
  // Operator workflows built on the executor, above any single playbook run (folder to come).
  ops: ['core', 'model', 'horcrux', 'inventory', 'facts', 'render', 'tasks', 'playbook', 'transport', 'backends', 'executor'],
  // Read-only audit of a fleet against the inventory: what is live versus what is wanted.
  verify: ['core', 'model', 'horcrux', 'inventory', 'facts', 'render', 'tasks', 'playbook', 'transport', 'backends', 'executor', 'ops'],
  // The command line: parses arguments, wires everything together, maps errors to exit codes.
  cli: '*',
} as const satisfies LayerMap;

/**
 * Modules that talk to the outside world (cloud SDKs, Vault client, SSH). A file that imports one of these
 * statically (a value import or `import type`; a dynamic `import()` is allowed anywhere) must live in one
 * of SDK_FOLDERS, so the rest of `src/` stays testable without them.
 */
export const SDK_MODULES: readonly RegExp[] = [/^@aws-sdk\//, /^node-vault(\/|$)/, /^ssh2(\/|$)/];
export const SDK_FOLDERS: readonly string[] = ['backends', 'transport'];
