/* auth: bearer tokens with scopes, from CRIER_API_TOKENS
 * ("scope:token,scope/label:token"; scopes workflow, operator, admin).
 * A token's label names it in the audit log and the consent ledger, so
 * that who did what is on record without the secret: "admin/alice:…" is
 * labelled "alice"; a token without one is "<scope>#<position>".
 *
 * Tokens are kept only as SHA-256 digests and a presented token is compared
 * with every configured one in constant time, so neither the comparison's
 * timing nor a memory dump gives a token away. */
#ifndef CRIER_HTTP_AUTH_H
#define CRIER_HTTP_AUTH_H

#include <stddef.h>

enum {
    AUTH_SCOPE_WORKFLOW = 1 << 0,
    AUTH_SCOPE_OPERATOR = 1 << 1,
    AUTH_SCOPE_ADMIN = 1 << 2,
};

#define AUTH_MAX_TOKENS 64
#define AUTH_TOKEN_MAX  512 /* bytes; longer tokens are refused */
#define AUTH_LABEL_MAX  64  /* bytes of a label, the NUL included */

typedef enum {
    AUTH_OK = 0,
    AUTH_UNAUTHORIZED, /* no token, malformed header, or an unknown token: 401 */
    AUTH_FORBIDDEN,    /* a known token without any of the needed scopes: 403 */
} auth_result_t;

typedef struct auth auth_t;

/* Parses spec (may be NULL or "": no token is valid then). Returns NULL with
 * a message in err on a malformed entry or an unknown scope; the message
 * names the entry's position, never the token. */
auth_t *auth_new(const char *spec, char *err, size_t errlen);
void auth_free(auth_t *a);
/* How many tokens were configured. */
int auth_count(const auth_t *a);
/* Parses a scope name; 0 if unknown. */
int auth_scope_parse(const char *name, size_t len);
/* Checks an Authorization header value (may be NULL) against the tokens;
 * need is a mask of the scopes of which one suffices. */
auth_result_t auth_check(const auth_t *a, const char *authorization, int need);
/* auth_check that also says which token it was: *label (borrowed from a,
 * valid while a is) is the label of the first entry the token matches, or
 * "" when it matches none. */
auth_result_t auth_check_as(const auth_t *a, const char *authorization, int need,
                            const char **label);

#endif
