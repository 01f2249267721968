/** The randomness source of the core (serials, instance IDs, tokens): a CSPRNG in production. */
export interface Random {
  bytes(n: number): Uint8Array;
}

export const webCryptoRandom: Random = {
  bytes(n) {
    const out = new Uint8Array(n);
    globalThis.crypto.getRandomValues(out);
    return out;
  },
};
