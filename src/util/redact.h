/* redact: copying provider text so that no phone number reaches a log line
 * or a database row. */
#ifndef CRIER_REDACT_H
#define CRIER_REDACT_H

#include <stddef.h>

/* Copies src into dst[cap] with every run of 7 or more digits (longer than
 * any provider error code, as long as any phone number) replaced by "***"
 * and control characters by spaces; cut to fit, never inside a UTF-8
 * sequence. */
void redact_copy_digits(char *dst, size_t cap, const char *src);

#endif
