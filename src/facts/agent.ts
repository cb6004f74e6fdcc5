import { shellQuote } from '../transport/transport.ts';
import type { RemoteFact } from '../core/task.ts';
import { AGENT_FILES } from '../render/vault-agent.ts';
import { SECRETS_DIR } from '../inventory/model.ts';
import { parseFileFact, type FileFact } from './file.ts';

/**
 * What the node's Vault Agent is doing, judged by its own state (ARCHITECTURE.md: a missing secret_id file
 * after a successful auth is normal): is the process in `agent.pid` alive, since when (pid file mtime,
 * seconds), is there a token in the sink, is a secret_id file lying around, and the config file's mtime.
 * Plus the rendered JWT file's stat, SHA-256 and whether it is exactly 64 lowercase hex (computed on the host).
 */
export interface AgentFact {
  running: boolean;
  pid?: number;
  startedAt?: number;
  tokenSink: boolean;
  secretIdFile: boolean;
  /** Temp files of an interrupted SFTP upload (`.<name>.krypton-<hex>.tmp`) left in the tmpfs. */
  leftoverTempFiles: number;
  configMtime?: number;
  jwt: FileFact & { isHex64: boolean };
}

export function agentState(): RemoteFact<AgentFact> {
  const pid = shellQuote(AGENT_FILES.pid);
  const jwt = shellQuote(AGENT_FILES.jwt);
  const script = [
    `if [ -f ${pid} ] && p=$(cat ${pid} 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "@agent running $p $(stat -c %.9Y -- ${pid})"; else echo "@agent stopped"; fi`,
    `[ -s ${shellQuote(AGENT_FILES.tokenSink)} ] && echo "@sink yes" || echo "@sink no"`,
    `[ -e ${shellQuote(AGENT_FILES.secretId)} ] && echo "@secret_id yes" || echo "@secret_id no"`,
    `echo "@leftovers $(find ${shellQuote(SECRETS_DIR)} -maxdepth 1 -name '.*.krypton-*.tmp' 2>/dev/null | wc -l)"`,
    `echo "@config $(stat -c %.9Y -- ${shellQuote(AGENT_FILES.config)} 2>/dev/null)"`,
    `if [ -f ${jwt} ]; then echo "@jwt $(stat -c '%a %U %G %s %.9Y' -- ${jwt}) $(sha256sum -- ${jwt} | cut -d' ' -f1) $(grep -qxE '[0-9a-f]{64}' ${jwt} && [ "$(wc -c < ${jwt})" -eq 64 ] && echo hex64 || echo nothex)"; else echo "@jwt absent"; fi`,
  ].join('\n');
  return { kind: 'remote', script, parse: parseAgentState };
}

export function parseAgentState(stdout: string): AgentFact {
  const get = (tag: string) => stdout.split('\n').find((l) => l.startsWith(`@${tag} `))?.slice(tag.length + 2).trim() ?? '';
  const agent = get('agent').split(/\s+/);
  const running = agent[0] === 'running';
  const cfg = get('config');
  const jwtParts = get('jwt').split(/\s+/);
  let jwt: AgentFact['jwt'] = { exists: false, isHex64: false };
  if (jwtParts[0] && jwtParts[0] !== 'absent') {
    const base = parseFileFact(`${jwtParts.slice(0, 5).join(' ')}\n${jwtParts[5] ?? ''}`);
    jwt = { ...base, isHex64: jwtParts[6] === 'hex64' };
  }
  return {
    running,
    pid: running ? Number(agent[1]) : undefined,
    startedAt: running ? Number(agent[2]) : undefined,
    tokenSink: get('sink') === 'yes',
    secretIdFile: get('secret_id') === 'yes',
    leftoverTempFiles: Number(get('leftovers') || '0') || 0,
    configMtime: cfg ? Number(cfg) : undefined,
    jwt,
  };
}
