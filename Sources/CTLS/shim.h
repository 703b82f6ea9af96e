#ifndef PAYWATCH_CTLS_SHIM_H
#define PAYWATCH_CTLS_SHIM_H

/* OpenSSL's server side for the test-support fakes (TLS on FakeGateway and FakeSMTPServer).
 * Only the macros Swift cannot call are wrapped; the rest of the API is used as it is. */

#include <openssl/ssl.h>
#include <openssl/err.h>

/** SSL_CTX_set_min_proto_version is a macro. */
static inline int ctls_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

/** SSL_set_mode(SSL_MODE_AUTO_RETRY) is a macro: blocking reads never return WANT_READ. */
static inline void ctls_set_auto_retry(SSL *ssl) {
    SSL_set_mode(ssl, SSL_MODE_AUTO_RETRY);
}

/** The first queued OpenSSL error as text (the queue is cleared). */
static inline void ctls_last_error(char *buffer, size_t size) {
    unsigned long code = ERR_get_error();
    if (code == 0) { if (size > 0) buffer[0] = 0; }
    else ERR_error_string_n(code, buffer, size);
    ERR_clear_error();
}

#endif
