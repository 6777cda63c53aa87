#include "channel/errclass.h"

#include <string.h>

errc_t errc_from_name(const char *name)
{
    for (errc_t c = ERRC_TRANSIENT; name && c <= ERRC_INVALID_INPUT; c++)
        if (strcmp(name, errc_name(c)) == 0)
            return c;
    return ERRC_PERMANENT;
}

const char *errc_name(errc_t c)
{
    switch (c) {
    case ERRC_NONE:
        return "none";
    case ERRC_TRANSIENT:
        return "transient";
    case ERRC_PERMANENT:
        return "permanent";
    case ERRC_RATE_LIMIT:
        return "rate_limit";
    case ERRC_AUTH_FAILURE:
        return "auth_failure";
    case ERRC_INVALID_INPUT:
        return "invalid_input";
    }
    return "unknown";
}

errc_t errc_from_http_status(int http_status)
{
    if (http_status == 429)
        return ERRC_RATE_LIMIT;
    if (http_status >= 500)
        return ERRC_TRANSIENT;
    if (http_status == 401 || http_status == 403)
        return ERRC_AUTH_FAILURE;
    return ERRC_NONE;
}
