#include "channel/errclass.h"

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
