import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../../src/core/errors.ts';
import type { Transport } from '../../../src/core/transport.ts';
import { ChannelLimiter, ConnectionPool, type SshTarget } from '../../../src/transport/ssh.ts';

const target = (name: string): SshTarget => ({ name, address: '127.0.0.1', port: 22, user: 'root' });

function fakeTransport(name: string): Transport & { isOpen: boolean; closes: number } {
  return {
    name,
    isOpen: true,
    closes: 0,
    async exec() {
      return { code: 0, stdout: '', stderr: '' };
    },
    async put() {},
    async forward() {
      throw new Error('no');
    },
    async close() {
      this.closes++;
      this.isOpen = false;
    },
  };
}

describe('ChannelLimiter', () => {
  it('admits at most max holders, FIFO, and releases are idempotent', async () => {
    const l = new ChannelLimiter(2);
    const r1 = await l.acquire();
    const r2 = await l.acquire();
    const order: number[] = [];
    const p3 = l.acquire().then((r) => (order.push(3), r));
    const p4 = l.acquire().then((r) => (order.push(4), r));
    await Promise.resolve();
    expect(l.active).toBe(2);
    expect(l.waiting).toBe(2);
    r1();
    r1();
    const r3 = await p3;
    expect(l.waiting).toBe(1);
    r2();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(l.active).toBe(0);
  });

  it('fail() rejects waiters and later acquisitions', async () => {
    const l = new ChannelLimiter(1);
    await l.acquire();
    const waiting = l.acquire();
    l.fail(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    await expect(l.acquire()).rejects.toThrow('gone');
  });

  it('rejects a bad limit', () => {
    expect(() => new ChannelLimiter(0)).toThrow(RangeError);
  });
});

describe('ConnectionPool', () => {
  it('shares one in-flight connect between concurrent callers, one connection per host name', async () => {
    let connects = 0;
    const pool = new ConnectionPool({}, async (t) => {
      connects++;
      await new Promise((r) => setTimeout(r, 10));
      return fakeTransport(t.name);
    });
    const [a, b, c] = await Promise.all([pool.get(target('a')), pool.get(target('a')), pool.get(target('b'))]);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(connects).toBe(2);
    expect(await pool.get(target('a'))).toBe(a);
    expect(connects).toBe(2);
  });

  it('forgets a failed connect so the next get retries', async () => {
    let n = 0;
    const pool = new ConnectionPool({}, async (t) => {
      if (n++ === 0) throw new KryptonError('E_SSH_CONNECT', `cannot connect to ${t.name}`);
      return fakeTransport(t.name);
    });
    await expect(pool.get(target('a'))).rejects.toMatchObject({ code: 'E_SSH_CONNECT' });
    await expect(pool.get(target('a'))).resolves.toMatchObject({ name: 'a' });
  });

  it('replaces a connection that was lost', async () => {
    const pool = new ConnectionPool({}, async (t) => fakeTransport(t.name));
    const a = (await pool.get(target('a'))) as ReturnType<typeof fakeTransport>;
    a.isOpen = false;
    const a2 = await pool.get(target('a'));
    expect(a2).not.toBe(a);
  });

  it('closeAll closes everything, including connects still in flight', async () => {
    const made: Array<ReturnType<typeof fakeTransport>> = [];
    const pool = new ConnectionPool({}, async (t) => {
      await new Promise((r) => setTimeout(r, 20));
      const f = fakeTransport(t.name);
      made.push(f);
      return f;
    });
    await pool.get(target('a'));
    void pool.get(target('b'));
    await pool.closeAll();
    expect(made.map((m) => m.closes)).toEqual([1, 1]);
    expect(pool.size).toBe(0);
  });
});
