/* crier dkim: the DKIM signing key. `keygen` writes a new private key and
 * prints the DNS record to publish for it, `record` prints the record of
 * the configured key. Also the one reading of the DKIM settings that serve
 * shares (dkim_cmd_signer). */
#include "channel/dkim.h"
#include "channel/mime.h"
#include "cli/commands.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A TXT record's strings hold at most 255 bytes each (RFC 1035 3.3.14). */
#define DKIM_CMD_TXT_STRING 255

static void dkim_cmd_usage(FILE *f)
{
    fprintf(f,
            "usage: crier dkim keygen --selector S [--domain D] [--algorithm rsa|ed25519]\n"
            "                         [--bits N] --out FILE\n"
            "       crier dkim record\n"
            "\n"
            "keygen  writes a new private key to FILE (mode 0600; an existing file is\n"
            "        never overwritten) and prints on stdout the DNS TXT record to publish\n"
            "        at S._domainkey.D. D is the signing domain: --domain, else\n"
            "        CRIER_DKIM_DOMAIN, else the domain of CRIER_MAIL_FROM. RSA keys have\n"
            "        --bits bits (default 2048, at least %d); Ed25519 keys are fixed-size.\n"
            "        Then set CRIER_DKIM_KEY_FILE=FILE and CRIER_DKIM_SELECTOR=S.\n"
            "record  prints the TXT record of the key CRIER_DKIM_KEY_FILE names, for\n"
            "        CRIER_DKIM_SELECTOR and the signing domain.\n"
            "\n"
            "The key file is a secret: keep it readable by crier only.\n",
            DKIM_RSA_MIN_BITS);
}

/* The signing domain of cfg: CRIER_DKIM_DOMAIN, else the domain of
 * CRIER_MAIL_FROM. 0, or -1 with err. */
static int dkim_cmd_domain(const cfg_t *cfg, char *out, size_t outlen, char *err, size_t errlen)
{
    if (cfg->dkim_domain && cfg->dkim_domain[0]) {
        snprintf(out, outlen, "%s", cfg->dkim_domain);
        return 0;
    }
    char addr[320];
    const char *at = NULL;
    if (mime_addr_spec(cfg->mail_from, addr, sizeof addr) == 0)
        at = strrchr(addr, '@');
    if (!at || !at[1] || strlen(at + 1) >= outlen) {
        snprintf(err, errlen,
                 "CRIER_DKIM_DOMAIN is not set and CRIER_MAIL_FROM has no usable domain");
        return -1;
    }
    snprintf(out, outlen, "%s", at + 1);
    return 0;
}

int dkim_cmd_signer(const cfg_t *cfg, dkim_signer_t **signer, char *err, size_t errlen)
{
    *signer = NULL;
    if (!cfg->dkim_key_file || !cfg->dkim_key_file[0])
        return 1;
    if (!cfg->dkim_selector || !cfg->dkim_selector[0]) {
        snprintf(err, errlen,
                 "CRIER_DKIM_KEY_FILE is set but CRIER_DKIM_SELECTOR is not: give the "
                 "selector its record is published under (S in S._domainkey.DOMAIN)");
        return -1;
    }
    char domain[256], why[768];
    if (dkim_cmd_domain(cfg, domain, sizeof domain, err, errlen) != 0)
        return -1;
    *signer = dkim_signer_load(cfg->dkim_key_file, cfg->dkim_selector, domain, why, sizeof why);
    if (!*signer) {
        snprintf(err, errlen, "CRIER_DKIM_KEY_FILE %s", why);
        return -1;
    }
    return 0;
}

/* Prints the zone-file line of the signer's record, its value split into
 * strings a TXT record can hold. */
static int dkim_cmd_print_record(const dkim_signer_t *s)
{
    buf_t rec;
    buf_init(&rec, 4096);
    if (dkim_record(s, &rec) != 0) {
        buf_free(&rec);
        fprintf(stderr, "crier dkim: cannot write the public key\n");
        return 1;
    }
    printf("%s._domainkey.%s. IN TXT", dkim_signer_selector(s), dkim_signer_domain(s));
    for (size_t off = 0; off < rec.len; off += DKIM_CMD_TXT_STRING) {
        size_t n = rec.len - off < DKIM_CMD_TXT_STRING ? rec.len - off : DKIM_CMD_TXT_STRING;
        printf(" \"%.*s\"", (int)n, rec.data + off);
    }
    printf("\n");
    buf_free(&rec);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int dkim_cmd_keygen(int argc, char **argv, const cfg_t *cfg)
{
    const char *selector = NULL, *domain_arg = NULL, *out = NULL, *alg_arg = "rsa";
    const char *bits_arg = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--selector") == 0    ? &selector
                            : strcmp(a, "--domain") == 0    ? &domain_arg
                            : strcmp(a, "--out") == 0       ? &out
                            : strcmp(a, "--algorithm") == 0 ? &alg_arg
                            : strcmp(a, "--bits") == 0      ? &bits_arg
                                                            : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "crier dkim keygen: %s \"%s\"\n",
                    slot ? "a value must follow" : "unexpected argument", a);
            dkim_cmd_usage(stderr);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!selector || !out) {
        fprintf(stderr, "crier dkim keygen: --selector and --out are required\n");
        return 2;
    }
    dkim_alg_t alg;
    if (strcmp(alg_arg, "rsa") == 0) {
        alg = DKIM_RSA_SHA256;
    } else if (strcmp(alg_arg, "ed25519") == 0) {
        alg = DKIM_ED25519_SHA256;
    } else {
        fprintf(stderr, "crier dkim keygen: --algorithm must be rsa or ed25519, not \"%s\"\n",
                alg_arg);
        return 2;
    }
    int bits = 2048;
    if (bits_arg) {
        char *end = NULL;
        long v = strtol(bits_arg, &end, 10);
        if (alg != DKIM_RSA_SHA256) {
            fprintf(stderr, "crier dkim keygen: --bits is for RSA keys only\n");
            return 2;
        }
        if (!end || *end || end == bits_arg || v < DKIM_RSA_MIN_BITS || v > 8192) {
            fprintf(stderr, "crier dkim keygen: --bits \"%s\" is not from %d to 8192\n", bits_arg,
                    DKIM_RSA_MIN_BITS);
            return 2;
        }
        bits = (int)v;
    }
    char domain[256], err[1024];
    if (domain_arg)
        snprintf(domain, sizeof domain, "%s", domain_arg);
    else if (dkim_cmd_domain(cfg, domain, sizeof domain, err, sizeof err) != 0) {
        fprintf(stderr, "crier dkim keygen: %s; give --domain\n", err);
        return 2;
    }
    /* The names are checked before a key is written for them. */
    if (dkim_names_check(selector, domain, err, sizeof err) != 0) {
        fprintf(stderr, "crier dkim keygen: %s\n", err);
        return 2;
    }
    dkim_signer_t *s = NULL;
    if (dkim_keygen(alg, bits, out, err, sizeof err) != 0) {
        fprintf(stderr, "crier dkim keygen: %s\n", err);
        return 1;
    }
    s = dkim_signer_load(out, selector, domain, err, sizeof err);
    if (!s) {
        fprintf(stderr, "crier dkim keygen: %s\n", err);
        remove(out);
        return 2;
    }
    int rc = dkim_cmd_print_record(s);
    if (rc == 0)
        fprintf(stderr,
                "crier dkim keygen: wrote %s (%s, %d bits, mode 0600). Publish the record "
                "above, then set CRIER_DKIM_KEY_FILE=%s and CRIER_DKIM_SELECTOR=%s%s%s.\n",
                out, dkim_alg_name(alg), dkim_signer_bits(s), out, selector,
                domain_arg ? " and CRIER_DKIM_DOMAIN=" : "", domain_arg ? domain : "");
    dkim_signer_free(s);
    return rc;
}

int cmd_dkim(int argc, char **argv, cfg_t *cfg)
{
    if (argc < 2) {
        dkim_cmd_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            (i == 1 && strcmp(argv[i], "help") == 0)) {
            dkim_cmd_usage(stdout);
            return 0;
        }
    }
    if (strcmp(sub, "keygen") == 0)
        return dkim_cmd_keygen(argc, argv, cfg);
    if (strcmp(sub, "record") != 0) {
        fprintf(stderr, "crier dkim: unknown sub-command \"%s\"\n", sub);
        dkim_cmd_usage(stderr);
        return 2;
    }
    if (argc > 2) {
        fprintf(stderr, "crier dkim record: unexpected argument \"%s\"\n", argv[2]);
        return 2;
    }
    dkim_signer_t *s = NULL;
    char err[1024];
    int rc = dkim_cmd_signer(cfg, &s, err, sizeof err);
    if (rc > 0) {
        fprintf(stderr, "crier dkim record: CRIER_DKIM_KEY_FILE is not set\n");
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "crier dkim record: %s\n", err);
        return 2;
    }
    rc = dkim_cmd_print_record(s);
    dkim_signer_free(s);
    return rc;
}
