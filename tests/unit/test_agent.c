/* User-Agent classes of the tracking endpoints: people, image proxies and
 * machines, as docs/tracking.md lists them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http/agent.h"

#include <string.h>

static void test_people(void **state)
{
    (void)state;
    const char *const people[] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0 Thunderbird/125.0",
        /* Apple Mail Privacy Protection fetches with a plain Mozilla/5.0: a person to us */
        "Mozilla/5.0",
    };
    for (size_t i = 0; i < sizeof people / sizeof people[0]; i++)
        assert_int_equal(http_agent_class(people[i]), HTTP_AGENT_HUMAN);
}

static void test_proxies(void **state)
{
    (void)state;
    assert_int_equal(http_agent_class("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                                      "(via ggpht.com GoogleImageProxy)"),
                     HTTP_AGENT_PROXY);
    assert_int_equal(
        http_agent_class(
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"),
        HTTP_AGENT_PROXY);
}

static void test_machines(void **state)
{
    (void)state;
    const char *const machines[] = {
        NULL,
        "",
        "   ",
        "Python-urllib/3.11",
        "python-requests/2.31.0",
        "curl/7.88.1",
        "Wget/1.21.3",
        "Go-http-client/1.1",
        "Java/17.0.2",
        "okhttp/4.12.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "WhatsApp/2.23.20.0 A",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        "PROOFPOINT URL Defense",
    };
    for (size_t i = 0; i < sizeof machines / sizeof machines[0]; i++)
        assert_int_equal(http_agent_class(machines[i]), HTTP_AGENT_SCANNER);
}

static void test_names_and_bound(void **state)
{
    (void)state;
    assert_string_equal(http_agent_name(HTTP_AGENT_HUMAN), "human");
    assert_string_equal(http_agent_name(HTTP_AGENT_PROXY), "proxy");
    assert_string_equal(http_agent_name(HTTP_AGENT_SCANNER), "scanner");
    /* only the first HTTP_AGENT_MAX bytes are read: a marker beyond them is not seen */
    char ua[HTTP_AGENT_MAX + 64];
    memset(ua, 'a', sizeof ua);
    memcpy(ua + HTTP_AGENT_MAX + 4, "curl/", 5);
    ua[sizeof ua - 1] = '\0';
    assert_int_equal(http_agent_class(ua), HTTP_AGENT_HUMAN);
    memcpy(ua + 10, "curl/", 5);
    assert_int_equal(http_agent_class(ua), HTTP_AGENT_SCANNER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_people),
        cmocka_unit_test(test_proxies),
        cmocka_unit_test(test_machines),
        cmocka_unit_test(test_names_and_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
