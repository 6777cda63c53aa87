#include "channel/ch.h"

#include <string.h>

/* The one table of channels: everything else asks the functions below. */
static const struct {
    const char *name;
    const char *label; /* as a sentence to a client names it */
    ch_contact_t contact;
    int needs_consent;
} ch_table[CH_N] = {
    [CH_EMAIL] = {CH_NAME_EMAIL, "email", CH_CONTACT_EMAIL, 0},
    [CH_SMS] = {CH_NAME_SMS, "SMS", CH_CONTACT_PHONE, 1},
    [CH_WHATSAPP] = {CH_NAME_WHATSAPP, "WhatsApp", CH_CONTACT_PHONE, 1},
};

static int ch_valid(ch_id_t c)
{
    return (int)c >= 0 && c < CH_N;
}

const char *ch_name(ch_id_t c)
{
    return ch_valid(c) ? ch_table[c].name : NULL;
}

const char *ch_label(ch_id_t c)
{
    return ch_valid(c) ? ch_table[c].label : NULL;
}

int ch_by_name(const char *name, ch_id_t *out)
{
    for (int i = 0; name && i < CH_N; i++)
        if (strcmp(ch_table[i].name, name) == 0) {
            *out = (ch_id_t)i;
            return 0;
        }
    return -1;
}

ch_contact_t ch_contact(ch_id_t c)
{
    return ch_valid(c) ? ch_table[c].contact : CH_CONTACT_EMAIL;
}

int ch_needs_consent(ch_id_t c)
{
    return ch_valid(c) ? ch_table[c].needs_consent : 0;
}
