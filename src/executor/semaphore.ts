/** A counting semaphore: at most `limit` holders at once, FIFO. */
export class Semaphore {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  constructor(limit: number) {
    if (!(limit >= 1)) throw new Error(`semaphore limit must be >= 1, got ${limit}`);
    this.#free = limit;
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    };
  }

  /** Runs `fn` holding one slot. */
  async use<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/**
 * A play's disruption budget (`max_validators_down`, `max_rpc_down`): at most `limit` nodes in a disruptive step
 * (a restart) at once, FIFO. A node whose disruptive step did not converge may still be down, so its slot stays
 * taken for the rest of the play (`release(false)`); once every slot is taken that way, the nodes waiting and any
 * that ask later are refused with `exhausted(…)` (the executor's E_HALTED) rather than taken down as well.
 */
export class Budget {
  #free: number;
  readonly #lost: string[] = [];
  readonly #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(readonly limit: number, private readonly exhausted: (lost: readonly string[]) => Error) {
    if (!(limit >= 1)) throw new Error(`budget limit must be >= 1, got ${limit}`);
    this.#free = limit;
  }

  /** Waits for a slot for `holder` (a host name); the release says whether its disruptive step converged. */
  async acquire(holder: string): Promise<(converged: boolean) => void> {
    if (this.#lost.length >= this.limit) throw this.exhausted([...this.#lost]);
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    let released = false;
    return (converged) => {
      if (released) return;
      released = true;
      if (!converged) {
        this.#lost.push(holder);
        if (this.#lost.length >= this.limit) for (const w of this.#waiters.splice(0)) w.reject(this.exhausted([...this.#lost]));
        return;
      }
      const next = this.#waiters.shift();
      if (next) next.resolve();
      else this.#free++;
    };
  }
}
