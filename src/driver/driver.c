#include "driver/driver.h"

#include "driver/email.h"
#include "driver/sms.h"
#include "driver/whatsapp.h"

/* The driver table, indexed by ch_id_t: a new channel adds its line. */
static const drv_t *const drv_table[CH_N] = {
    [CH_EMAIL] = &email_driver,
    [CH_SMS] = &sms_driver,
    [CH_WHATSAPP] = &whatsapp_driver,
};

const drv_t *drv_get(ch_id_t c)
{
    return (int)c >= 0 && c < CH_N ? drv_table[c] : NULL;
}

const drv_t *drv_by_name(const char *name)
{
    ch_id_t c;
    return ch_by_name(name, &c) == 0 ? drv_get(c) : NULL;
}

unsigned drv_channels_off(const cfg_t *cfg)
{
    unsigned off = 0;
    /* A live channel without credentials would fail every send with
     * auth_failure; telling the rules up front picks another channel instead. */
    for (int c = 0; c < CH_N; c++)
        if (!drv_table[c]->available(cfg))
            off |= CH_BIT(c);
    return off;
}
