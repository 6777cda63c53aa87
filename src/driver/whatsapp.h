/* whatsapp: the WhatsApp driver, through the Cloud API (live) or the
 * sandbox outbox (<id>.whatsapp.json).
 *
 * Inside the client's 24-hour customer-service window the free-text
 * template goes out; outside it only an approved template may, so the
 * message type's approved template is sent with its rendered parameters. */
#ifndef CRIER_DRIVER_WHATSAPP_H
#define CRIER_DRIVER_WHATSAPP_H

#include "driver/driver.h"

extern const drv_t whatsapp_driver;

#endif
