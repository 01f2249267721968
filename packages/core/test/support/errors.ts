import { expect } from 'vitest';
import { AgentCAError } from '../../src/index.ts';

type ErrorClass = abstract new (...args: never[]) => AgentCAError;

/** Runs `fn` and returns the AgentCAError it throws (or rejects with); anything else fails the test. */
export async function caught(fn: () => unknown): Promise<AgentCAError> {
  let result: unknown;
  try {
    result = await fn();
  } catch (e) {
    if (!(e instanceof AgentCAError)) throw new Error(`expected an AgentCAError, got ${String(e)}`, { cause: e });
    return e;
  }
  throw new Error(`expected an AgentCAError, got success: ${String(result).slice(0, 200)}`);
}

/** Synchronous variant, for parsers: the error must be thrown, not returned or deferred. */
export function caughtSync(fn: () => unknown): AgentCAError {
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    if (!(e instanceof AgentCAError)) throw new Error(`expected an AgentCAError, got ${String(e)}`, { cause: e });
    return e;
  }
  throw new Error(`expected an AgentCAError, got success: ${String(result).slice(0, 200)}`);
}

/** Asserts category, stable code and message text of an AgentCAError. */
export function expectAgentError(e: AgentCAError, cls: ErrorClass, code: string, message: string | RegExp): void {
  expect(e).toBeInstanceOf(cls);
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
}
