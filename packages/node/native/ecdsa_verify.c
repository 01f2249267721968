/*
 * ECDSA P-256 / P-384 verification from an uncompressed point, against OpenSSL as Node links
 * it, for the CSR proof-of-possession check on the verify workers.
 *
 * Why: every public path of node:crypto turns a point into a key through OpenSSL 3.0's key
 * import, which builds the curve's EC_GROUP afresh each time (~100 µs for P-256 on the CI
 * machine, as much as the verification itself), and a CSR's key is used exactly once. Here
 * each thread (each Node environment: a worker is one) builds one EC_KEY per curve once and
 * swaps only the public point into it. The checks are OpenSSL's own: EC_POINT_oct2point
 * refuses coordinates outside the field and points off the curve (both curves have cofactor
 * 1, so a point on the curve that is not the identity is in the group, and an uncompressed
 * encoding cannot be the identity); ECDSA_verify parses the signature as DER, refuses any
 * encoding that does not re-encode to the same bytes, and checks r and s are in [1, n-1].
 *
 * verify(point, digest, signature) -> 1 valid, 0 invalid signature, -1 unusable key.
 * The digest is computed by the caller with the hash the signature names.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <stdlib.h>

typedef struct {
  EC_KEY *key;
  EC_POINT *point;
} curve_state;

typedef struct {
  curve_state p256, p384;
} env_state;

static void curve_free(curve_state *c) {
  EC_POINT_free(c->point);
  EC_KEY_free(c->key);
}

static int curve_init(curve_state *c, int nid) {
  c->key = EC_KEY_new_by_curve_name(nid);
  c->point = c->key ? EC_POINT_new(EC_KEY_get0_group(c->key)) : NULL;
  return c->point != NULL;
}

static void env_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  env_state *s = data;
  curve_free(&s->p256);
  curve_free(&s->p384);
  free(s);
}

static int bytes_arg(napi_env env, napi_value v, const unsigned char **p, size_t *n) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type t;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, n, &data, &ab, &off) != napi_ok || t != napi_uint8_array) return 0;
  *p = data;
  return 1;
}

static napi_value verify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  env_state *s;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&s) != napi_ok || argc != 3) {
    napi_throw_type_error(env, NULL, "verify(point, digest, signature) takes three Uint8Arrays");
    return NULL;
  }
  const unsigned char *point, *digest, *sig;
  size_t point_len, digest_len, sig_len;
  if (!bytes_arg(env, argv[0], &point, &point_len) || !bytes_arg(env, argv[1], &digest, &digest_len) ||
      !bytes_arg(env, argv[2], &sig, &sig_len) || digest_len == 0 || digest_len > 64 || sig_len > 1024) {
    napi_throw_type_error(env, NULL, "verify(point, digest, signature) takes three Uint8Arrays");
    return NULL;
  }
  curve_state *c = point_len == 65 ? &s->p256 : point_len == 97 ? &s->p384 : NULL;
  int r = -1;
  if (c != NULL && point[0] == 0x04 &&
      EC_POINT_oct2point(EC_KEY_get0_group(c->key), c->point, point, point_len, NULL) == 1 &&
      EC_KEY_set_public_key(c->key, c->point) == 1) {
    r = ECDSA_verify(0, digest, (int)digest_len, sig, (int)sig_len, c->key) == 1 ? 1 : 0;
  }
  /* Refusals leave entries on this thread's OpenSSL error queue, which Node's own crypto
     calls on the same thread would otherwise find there. */
  ERR_clear_error();
  napi_value out;
  napi_create_int32(env, r, &out);
  return out;
}

NAPI_MODULE_INIT() {
  env_state *s = calloc(1, sizeof *s);
  if (s == NULL || !curve_init(&s->p256, NID_X9_62_prime256v1) || !curve_init(&s->p384, NID_secp384r1)) {
    if (s != NULL) env_free(env, s, NULL);
    ERR_clear_error();
    napi_throw_error(env, NULL, "ecdsa_verify: OpenSSL could not build the P-256 and P-384 groups");
    return NULL;
  }
  if (napi_set_instance_data(env, s, env_free, NULL) != napi_ok) {
    env_free(env, s, NULL);
    return NULL;
  }
  napi_value f;
  napi_create_function(env, "verify", NAPI_AUTO_LENGTH, verify, s, &f);
  napi_set_named_property(env, exports, "verify", f);
  return exports;
}
