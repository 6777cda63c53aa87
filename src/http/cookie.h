/* cookie: one value out of a request's Cookie header (RFC 6265 section
 * 5.4: "name=value" pairs separated by "; "). */
#ifndef CRIER_HTTP_COOKIE_H
#define CRIER_HTTP_COOKIE_H

#include <stddef.h>

/* Copies the value of the first cookie called name in header (may be NULL)
 * into out[0..outlen). Returns 0; -1 when there is none, or its value does
 * not fit (a value that long is none of ours). Surrounding double quotes
 * are kept: crier's own values never have them. */
int http_cookie_get(const char *header, const char *name, char *out, size_t outlen);

#endif
