/* agent: what kind of client a request's User-Agent says sent it, for the
 * tracking endpoints (docs/tracking.md): a person's browser or mail client,
 * a mail provider's image proxy fetching for a person who opened the mail,
 * or a machine (a link scanner, a preview fetcher, an HTTP library) that no
 * person asked. The User-Agent is the client's word, so this only sorts the
 * honest ones; a scanner that passes for a browser is human here (the
 * tracking store has a second rule, the time since sending). */
#ifndef CRIER_HTTP_AGENT_H
#define CRIER_HTTP_AGENT_H

typedef enum http_agent {
    HTTP_AGENT_HUMAN,   /* anything not recognised as below */
    HTTP_AGENT_PROXY,   /* a mail provider's image proxy (GoogleImageProxy, YahooMailProxy) */
    HTTP_AGENT_SCANNER, /* a known scanner, bot, preview fetcher or HTTP library; or no UA */
} http_agent_t;

/* The class of user_agent (NULL: none was sent). Reads at most the first
 * HTTP_AGENT_MAX bytes. */
http_agent_t http_agent_class(const char *user_agent);
/* "human", "proxy" or "scanner". */
const char *http_agent_name(http_agent_t a);

#define HTTP_AGENT_MAX 512

#endif
