export type NativeVerify = (point: Uint8Array, digest: Uint8Array, signature: Uint8Array) => -1 | 0 | 1;
export function nativeEcdsa(): { verify: NativeVerify; error: null } | { verify: null; error: string };
export function verifyEcPoint(verify: NativeVerify, hashName: string | null, point: Uint8Array, data: Uint8Array, signature: Uint8Array): -1 | 0 | 1;
