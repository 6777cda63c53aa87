/* email: the email driver. A claimed communication is rendered (a digest
 * merges its members' subjects), built as a MIME message with its
 * attachments, and either sent over SMTP on the mail transport loop (live)
 * or written to the sandbox outbox as <id>.eml. */
#ifndef CRIER_DRIVER_EMAIL_H
#define CRIER_DRIVER_EMAIL_H

#include "driver/driver.h"

extern const drv_t email_driver;

#endif
