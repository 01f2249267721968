export type NativeVerify = (point: Uint8Array, digest: Uint8Array, signature: Uint8Array) => -1 | 0 | 1;
export function nativeEcdsa(): { verify: NativeVerify; error: null } | { verify: null; error: string };
export function verifyEcPoint(verify: NativeVerify, format: 'P-256' | 'P-384', hashName: string | null, point: Uint8Array, data: Uint8Array, signature: Uint8Array): -1 | 0 | 1;
export const POINT_LENGTH: { readonly 'P-256': 65; readonly 'P-384': 97 };
