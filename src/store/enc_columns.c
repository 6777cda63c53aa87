#include "store/enc_columns.h"

const enc_table_t enc_tables[] = {
    {"clients", "uuid", {"name", "email", "phone"}, 3, 1, 1},
    {"inbound_messages", "bigint", {"sender", "body"}, 2, 1, 1},
    {"communications", "uuid", {"subject"}, 1, 0, 0},
    {"workflow_callbacks", "uuid", {"payload"}, 1, 0, 0},
};

const int enc_tables_n = (int)(sizeof enc_tables / sizeof enc_tables[0]);

_Static_assert(sizeof enc_tables / sizeof enc_tables[0] <= ENC_TABLES_MAX,
               "ENC_TABLES_MAX bounds the tables' counts");
