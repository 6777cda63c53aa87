/* agent: sorting User-Agent strings (see agent.h). */
#include "http/agent.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

/* Image proxies that fetch the pixel when a person opens the mail: an open,
 * but made by the provider (the address and time are the proxy's, and later
 * opens are served from its cache). Apple Mail Privacy Protection sends no
 * distinctive User-Agent and cannot be told apart here. */
static const char *const http_agent_proxies[] = {
    "googleimageproxy",
    "yahoomailproxy",
};

/* Substrings (lower case) of the User-Agents of machines that fetch links
 * and images without a person: security gateways and link scanners,
 * preview and unfurl fetchers of chat and social apps, crawlers, and the
 * HTTP libraries and tools that scripts use. */
static const char *const http_agent_scanners[] = {
    /* words crawlers and scanners put in their names ("Googlebot",
     * "LinkedInBot", "TelegramBot", "HeadlessChrome") */
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "headless",
    "phantomjs",
    "slurp",
    /* security gateways that announce themselves */
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    /* link preview fetchers without "bot" in their names */
    "facebookexternalhit",
    "slack-imgproxy",
    "whatsapp/",
    "skypeuripreview",
    "embedly",
    /* HTTP libraries and command-line tools */
    "python-urllib",
    "python-requests",
    "python-httpx",
    "aiohttp",
    "curl/",
    "wget/",
    "libwww",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "node-fetch",
    "axios/",
    "undici",
    "httpie",
    "postmanruntime",
    "guzzlehttp",
    "winhttp",
    "powershell",
};

/* 1 when the lower-case needle occurs in ua[0..n) regardless of case. */
static int http_agent_has(const char *ua, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && (char)tolower((unsigned char)ua[i + k]) == needle[k])
            k++;
        if (k == m)
            return 1;
    }
    return 0;
}

http_agent_t http_agent_class(const char *user_agent)
{
    if (!user_agent)
        return HTTP_AGENT_SCANNER;
    size_t n = strnlen(user_agent, HTTP_AGENT_MAX);
    size_t lead = 0;
    while (lead < n && isspace((unsigned char)user_agent[lead]))
        lead++;
    /* Every browser and mail client names itself: an empty one is a script. */
    if (lead == n)
        return HTTP_AGENT_SCANNER;
    for (size_t i = 0; i < sizeof http_agent_proxies / sizeof http_agent_proxies[0]; i++)
        if (http_agent_has(user_agent, n, http_agent_proxies[i]))
            return HTTP_AGENT_PROXY;
    for (size_t i = 0; i < sizeof http_agent_scanners / sizeof http_agent_scanners[0]; i++)
        if (http_agent_has(user_agent, n, http_agent_scanners[i]))
            return HTTP_AGENT_SCANNER;
    return HTTP_AGENT_HUMAN;
}

const char *http_agent_name(http_agent_t a)
{
    switch (a) {
    case HTTP_AGENT_PROXY:
        return "proxy";
    case HTTP_AGENT_SCANNER:
        return "scanner";
    case HTTP_AGENT_HUMAN:
        break;
    }
    return "human";
}
