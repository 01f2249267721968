/** One request's result inside a batch. */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Waiting<Q, R> {
  request: Q;
  keys: readonly string[];
  resolve(value: R): void;
  reject(error: unknown): void;
}

/**
 * Turns many concurrent calls of one kind (a lookup by key, a serial reservation) into one
 * statement over arrays. A round trip to PostgreSQL costs far more than the work of a row
 * (on a loopback socket most of it is the send), so under load the calls that arrive while a
 * batch is in flight are sent together as the next one; an idle store sends a call on the next
 * turn of the event loop. `keys` keep two requests for the same row (two uses of one token, one
 * serial twice) out of one statement: the later waits for the next batch.
 */
export class Coalescer<Q, R> {
  readonly #run: (batch: Q[]) => Promise<Settled<R>[]>;
  readonly #keys: (request: Q) => readonly string[];
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  #waiting: Waiting<Q, R>[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(run: (batch: Q[]) => Promise<Settled<R>[]>, o: { keys?: (request: Q) => readonly string[]; maxBatch?: number; maxInFlight?: number } = {}) {
    this.#run = run;
    this.#keys = o.keys ?? (() => []);
    this.#maxBatch = o.maxBatch ?? 1000;
    this.#maxInFlight = o.maxInFlight ?? 1;
  }

  /** Resolves once every request submitted so far has been sent and settled. */
  async drain(): Promise<void> {
    while (this.#waiting.length > 0 || this.#inFlight > 0 || this.#scheduled) await new Promise((resolve) => setImmediate(resolve));
  }

  submit(request: Q): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ request, keys: this.#keys(request), resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight || this.#waiting.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#inFlight >= this.#maxInFlight) return;
    const batch: Waiting<Q, R>[] = [];
    const later: Waiting<Q, R>[] = [];
    const taken = new Set<string>();
    for (const w of this.#waiting) {
      if (batch.length >= this.#maxBatch || w.keys.some((k) => taken.has(k))) {
        later.push(w);
        continue;
      }
      for (const k of w.keys) taken.add(k);
      batch.push(w);
    }
    this.#waiting = later;
    if (batch.length === 0) return;
    this.#inFlight++;
    this.#schedule();
    try {
      const results = await this.#run(batch.map((w) => w.request));
      batch.forEach((w, i) => {
        const r = results[i]!;
        if (r.ok) w.resolve(r.value);
        else w.reject(r.error);
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.#inFlight--;
      this.#schedule();
    }
  }
}

/**
 * A lookup by key through a {@link Coalescer}: `sql` takes `$1::text[]` and returns rows whose
 * `keyOf` is one of them; each caller gets its own key's row, or null.
 */
export function keyedLookup<Row>(query: (sql: string, params: unknown[]) => Promise<{ rows: Row[] }>, sql: string, keyOf: (row: Row) => string): Coalescer<string, Row | null> {
  return new Coalescer<string, Row | null>(
    async (keys) => {
      const rows = (await query(sql, [[...new Set(keys)]])).rows;
      const byKey = new Map(rows.map((r) => [keyOf(r), r]));
      return keys.map((k) => ({ ok: true, value: byKey.get(k) ?? null }));
    },
    { maxInFlight: 4 },
  );
}
