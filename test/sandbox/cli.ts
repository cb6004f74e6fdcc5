/**
 * npm run sandbox:up -- [--hosts N] [--cosigners M] [--backend vault|kms|secrets-manager] [--plaintext-jwt] [--no-env]
 *                        [--runtime standin|docker] [--jwt-mount file|dir] [--dir D] [--keep-on-failure]
 * npm run sandbox:down -- [--dir D]
 * `up` tears down a sandbox already up in the dir first. Exit 0 on success, 1 on failure, 2 on usage.
 */
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_DIR, sandboxDown, sandboxUp, type Backend, type JwtMount, type Runtime } from './index.ts';

const USAGE = `usage: cli.ts up [--hosts N] [--cosigners M] [--backend vault|kms|secrets-manager] [--plaintext-jwt] [--no-env]
                 [--runtime standin|docker] [--jwt-mount file|dir] [--dir D] [--keep-on-failure]
       cli.ts down [--dir D]`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        hosts: { type: 'string', default: '3' },
        cosigners: { type: 'string', default: '0' },
        backend: { type: 'string', default: 'vault' },
        'plaintext-jwt': { type: 'boolean', default: false },
        'no-env': { type: 'boolean', default: false },
        runtime: { type: 'string', default: 'standin' },
        'jwt-mount': { type: 'string' },
        'keep-on-failure': { type: 'boolean', default: false },
        dir: { type: 'string', default: DEFAULT_DIR },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || (cmd !== 'up' && cmd !== 'down')) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  if (cmd === 'down') {
    await sandboxDown(values.dir);
    console.log('sandbox down');
    return 0;
  }
  const started = Date.now();
  const info = await sandboxUp({
    hosts: Number(values.hosts),
    cosigners: Number(values.cosigners),
    backend: values.backend as Backend,
    plaintextJwt: values['plaintext-jwt'],
    env: !values['no-env'],
    runtime: values.runtime as Runtime,
    ...(values['jwt-mount'] ? { jwtMount: values['jwt-mount'] as JwtMount } : {}),
    dir: values.dir,
    keepOnFailure: values['keep-on-failure'],
  });
  const rel = relative(process.cwd(), info.dir) || '.';
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`sandbox up in ${seconds} s (${info.dir})`);
  console.log(`  OpenBao   ${info.vault.address} (dev, root token in ${rel}/env; approle enabled, KV v2 at secret/)`);
  if (info.aws) {
    console.log(`  moto      ${info.aws.endpoint} (IAM enforced; region ${info.aws.region}; CMK ${info.aws.keyAlias} = ${info.aws.keyArn})`);
    console.log(`            operator ${info.aws.admin.arn} (keys in ${rel}/env); each node: its own identity in /root/.aws, kms:Decrypt / GetSecretValue only`);
  }
  for (const h of Object.values(info.hosts)) {
    const rt = info.docker ? `, docker (geth + CL stand-in under compose, JWT mount ${info.docker.jwtMount})` : '';
    const what = h.kind === 'node' ? `node, ${h.role}${rt}${info.plaintextJwt ? ', el/cl on plaintext jwt.hex' : ''}` : `cosigner, shard ${h.shardId}`;
    console.log(`  ${h.name.padEnd(12)} root@${h.address}  (${what})`);
  }
  console.log(`  inventory ${rel}/inventory.yml   ssh key ${rel}/id_ed25519   known_hosts ${rel}/known_hosts`);
  console.log(`\nsource ${rel}/env`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`sandbox: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
