/**
 * JWKS sources for the JWT provisioner: a JWKS file (e.g. a cluster's `/openid/v1/jwks`
 * saved by the operator) or an HTTPS URL. Both cache, return the same object while the keys
 * are unchanged, keep the last good set when a read or fetch fails, and refuse a set larger
 * than {@link JWKS_MAX_BYTES} or holding private or secret key material.
 */
import { readFile, stat } from 'node:fs/promises';
import { InvalidRequest, Unavailable, systemClock, type Clock, type JSONWebKeySet, type JwksSource } from '@agentca/core';

export const JWKS_MAX_BYTES = 256 * 1024;
/** After a failed fetch, the next attempt waits this long (or the TTL, if shorter). */
export const JWKS_RETRY_SECONDS = 30;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Parses and checks a JWKS document; throws a plain Error saying why (the caller adds where). */
function parseJwks(text: string): JSONWebKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error('it is not valid JSON');
  }
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) throw new Error('it is not a JSON Web Key Set (no keys list)');
  for (const k of (doc as { keys: unknown[] }).keys) {
    if (k === null || typeof k !== 'object' || Array.isArray(k) || typeof (k as { kty?: unknown }).kty !== 'string') throw new Error('a key is not a JWK object with a kty');
    if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(k, m))) throw new Error('it holds private or secret key material');
  }
  return doc as JSONWebKeySet;
}

function reason(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${e.message} (${code})` : e.message;
}

/**
 * A JWKS file, re-read when its modification time, size or inode changes (an atomic
 * replace changes the inode). A file that turns unreadable or invalid keeps the last good set.
 *
 * @example
 * const jwks = fileJwksSource('/etc/agentca/cluster-jwks.json');
 */
export function fileJwksSource(path: string): JwksSource {
  let cached: { set: JSONWebKeySet; text: string; stamp: string } | null = null;
  const fail = (why: string, cause?: unknown): JSONWebKeySet => {
    if (cached) return cached.set;
    throw new Unavailable('ERR_JWKS_UNAVAILABLE', `cannot read the JWKS file ${path}: ${why}`, cause === undefined ? undefined : { cause });
  };
  return {
    async getKeys(options) {
      let stamp: string;
      let size: number;
      try {
        const st = await stat(path);
        if (!st.isFile()) return fail('it is not a file');
        stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
        size = st.size;
      } catch (e) {
        return fail((e as NodeJS.ErrnoException).code ?? reason(e), e);
      }
      if (cached && cached.stamp === stamp && !options?.refresh) return cached.set;
      if (size > JWKS_MAX_BYTES) return fail(`it is larger than ${JWKS_MAX_BYTES} bytes`);
      let text: string;
      let set: JSONWebKeySet;
      try {
        text = await readFile(path, 'utf8');
        if (Buffer.byteLength(text) > JWKS_MAX_BYTES) return fail(`it is larger than ${JWKS_MAX_BYTES} bytes`);
        set = cached && cached.text === text ? cached.set : parseJwks(text);
      } catch (e) {
        return fail((e as NodeJS.ErrnoException).code ?? reason(e), e);
      }
      cached = { set, text, stamp };
      return set;
    },
  };
}

/**
 * Checks a JWKS URL: `https://`, or `http://` to the loopback host only (a local proxy, or
 * `kubectl proxy`); no credentials in the URL. Throws InvalidRequest `ERR_JWKS_URL_INVALID`.
 */
export function checkJwksUrl(url: string): URL {
  const bad = (why: string): never => {
    throw new InvalidRequest('ERR_JWKS_URL_INVALID', `${JSON.stringify(String(url).slice(0, 200))} is not a usable JWKS URL: ${why}`);
  };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return bad('it is not a URL');
  }
  if (u.username || u.password) bad('credentials in the URL are not allowed');
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return u;
  return bad('use https://, or http:// to 127.0.0.1 or localhost only');
}

export interface UrlJwksOptions {
  /** How long a fetched set is served before it is fetched again; default 300. */
  ttlSeconds?: number;
  /** The whole request, body included, must finish in this time; default 5000. */
  timeoutMs?: number;
  clock?: Clock;
}

async function fetchText(url: URL, timeoutMs: number): Promise<string> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: abort.signal, redirect: 'error', headers: { accept: 'application/json, application/jwk-set+json' } });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`HTTP status ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    const tooLarge = () => new Error(`the response is larger than ${JWKS_MAX_BYTES} bytes`);
    if (declared > JWKS_MAX_BYTES) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > JWKS_MAX_BYTES) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    }
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch (e) {
    if (abort.signal.aborted) throw new Error(`timed out after ${timeoutMs} ms`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A JWKS fetched over HTTPS and cached for `ttlSeconds`. A failed fetch (network, status other
 * than 200, timeout, over {@link JWKS_MAX_BYTES}, not a valid set) keeps serving the last
 * good set and is retried after {@link JWKS_RETRY_SECONDS}; with no good set yet it throws
 * Unavailable `ERR_JWKS_UNAVAILABLE`. Redirects are not followed. `refresh: true` fetches
 * now; concurrent callers share one request.
 *
 * @example
 * const jwks = urlJwksSource('https://token.actions.githubusercontent.com/.well-known/jwks');
 */
export function urlJwksSource(url: string, { ttlSeconds = 300, timeoutMs = 5000, clock = systemClock }: UrlJwksOptions = {}): JwksSource {
  const target = checkJwksUrl(url);
  if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) throw new InvalidRequest('ERR_JWKS_TTL_INVALID', 'the JWKS TTL must be a positive number of seconds');
  if (!(Number.isSafeInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= 60_000)) throw new InvalidRequest('ERR_JWKS_TIMEOUT_INVALID', 'the JWKS fetch timeout must be 1-60000 ms');
  const ttlMs = ttlSeconds * 1000;
  const retryMs = Math.min(ttlMs, JWKS_RETRY_SECONDS * 1000);
  let set: JSONWebKeySet | null = null;
  let text: string | null = null;
  let nextFetchAt = -Infinity;
  let lastError: Unavailable | null = null;
  let inflight: Promise<JSONWebKeySet> | null = null;

  const load = async (): Promise<JSONWebKeySet> => {
    try {
      const body = await fetchText(target, timeoutMs);
      if (body !== text) {
        set = parseJwks(body);
        text = body;
      }
      nextFetchAt = clock.now().getTime() + ttlMs;
      lastError = null;
      return set!;
    } catch (e) {
      nextFetchAt = clock.now().getTime() + retryMs;
      lastError = new Unavailable('ERR_JWKS_UNAVAILABLE', `cannot fetch the JWKS from ${target.href}: ${reason(e)}`, { cause: e });
      if (set) return set;
      throw lastError;
    }
  };

  return {
    getKeys(options) {
      if (!options?.refresh && clock.now().getTime() < nextFetchAt) {
        if (set) return Promise.resolve(set);
        if (lastError) return Promise.reject(lastError);
      }
      inflight ??= load().finally(() => {
        inflight = null;
      });
      return inflight;
    },
  };
}
