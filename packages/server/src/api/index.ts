/** The HTTPS issuance API of `agentca serve` (PRODUCT.md §5). */
export { buildApiServer } from './app.ts';
export { startApiServer, type ApiServerHandle, type StartApiServerOptions } from './server.ts';
export type { ApiLog, ApiServerOptions, JwtAuthorizer } from './context.ts';
export type { ApiTlsMaterial } from './mtls.ts';
export { httpStatus, errorBody, type ErrorBody } from './errors.ts';
export { API_ROUTES, BODY_LIMIT, CSR_MAX_CHARS, type RouteSpec, type RouteAuth } from './schemas.ts';
export { buildOpenApiDocument, renderApiReference, type OpenApiDocument, type OpenApiOperation } from './openapi.ts';
