/* json_text: writing JSON text into a bounded buffer by hand, for the hot
 * paths (log lines, API answers) where building a cJSON tree would cost more
 * than the text itself. */
#ifndef CRIER_JSON_TEXT_H
#define CRIER_JSON_TEXT_H

#include "util/buf.h"

/* Appends s as a quoted JSON string, escaping quotes, backslashes and control
 * characters. Returns 0 or -1 when the buffer is full. */
int jtext_string(buf_t *b, const char *s);

#endif
