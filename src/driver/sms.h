/* sms: the SMS driver, through Twilio's Messages API (live) or the sandbox
 * outbox (<id>.sms.json).
 *
 * The body is the SMS template rendered with the same context as the email;
 * a body costing more segments than CRIER_SMS_SEGMENT_BUDGET is refused as
 * invalid_input, so the rules move the message to its next channel rather
 * than billing a long text. */
#ifndef CRIER_DRIVER_SMS_H
#define CRIER_DRIVER_SMS_H

#include "driver/driver.h"

extern const drv_t sms_driver;

#endif
