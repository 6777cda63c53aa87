/* log: structured JSON log lines on stderr, in the seed's format:
 *   {"timestamp":"…Z","level":"INFO","component":"queue","event":"claimed","count":"8"}
 *
 * Fields are given as NULL-terminated key/value string pairs. Every line is
 * scrubbed of registered secrets before it is written, so a token that leaks
 * into an error text from a library never reaches the log. */
#ifndef CRIER_LOG_H
#define CRIER_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_CRITICAL } log_level_t;

/* Sets the lowest level written (default LOG_INFO). */
void log_set_level(log_level_t min);
/* 1 when a line at level would be written: lets a caller skip formatting
 * values for a line nobody reads. */
int log_enabled(log_level_t level);
/* Parses "debug", "info", "warning", "error", "critical"; -1 if unknown. */
int log_level_parse(const char *s);
/* Registers a secret value (copied) to be replaced by "[redacted]" in every
 * later line. Values shorter than 4 bytes are ignored: they would redact noise. */
void log_add_secret(const char *value);
/* Writes one line. The variadic part is key, value, key, value, ..., NULL;
 * a NULL value is written as JSON null. */
void log_kv(log_level_t level, const char *component, const char *event, ...);

#define log_info(comp, ev, ...)  log_kv(LOG_INFO, comp, ev, __VA_ARGS__)
#define log_warn(comp, ev, ...)  log_kv(LOG_WARNING, comp, ev, __VA_ARGS__)
#define log_error(comp, ev, ...) log_kv(LOG_ERROR, comp, ev, __VA_ARGS__)

#endif
