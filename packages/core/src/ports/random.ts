/** The randomness source of the core (serials, instance IDs, tokens): a CSPRNG in production. */
export interface Random {
  bytes(n: number): Uint8Array;
}

/**
 * The platform CSPRNG (WebCrypto `getRandomValues`). Small requests are cut from a 4 KiB pool
 * refilled from it, as Node's `randomUUID` does: one call into the CSPRNG per ~250 serials
 * instead of one per value. Bytes are handed out once and wiped from the pool as they go.
 */
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

export const webCryptoRandom: Random = {
  bytes(n) {
    if (n > 256) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
      return out;
    }
    if (poolOffset + n > POOL_SIZE) {
      globalThis.crypto.getRandomValues(pool);
      poolOffset = 0;
    }
    const out = pool.slice(poolOffset, poolOffset + n);
    pool.fill(0, poolOffset, poolOffset + n);
    poolOffset += n;
    return out;
  },
};
