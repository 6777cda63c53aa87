/* crier keys: the encryption key ring. `status` counts the stored values
 * under each key id, `rotate` re-encrypts them under the current key while
 * crier serve runs, `index-key` prints the blind index key so that the
 * oldest key can be dropped once nothing is under it (`link-key` likewise
 * for the key of the links in sent mail). Also the one reading
 * of the key settings every command shares (keys_from_cfg). */
#include "cli/commands.h"
#include "crypto/crypto.h"
#include "store/db.h"
#include "store/rotate.h"
#include "util/base64.h"
#include "util/buf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS_BATCH_MAX 10000

static void keys_usage(FILE *f)
{
    fprintf(f,
            "usage: crier keys status\n"
            "       crier keys rotate [--batch N] [--dry-run]\n"
            "       crier keys index-key\n"
            "       crier keys link-key\n"
            "\n"
            "The keys are CRIER_ENCRYPTION_KEYS (id:base64,id:base64,...: the first\n"
            "encrypts every new value, the others only decrypt) or CRIER_ENCRYPTION_KEY\n"
            "(one key), and CRIER_BLIND_INDEX_KEY (optional: by default the blind index\n"
            "key is derived from the last key listed).\n"
            "\n"
            "status     how many stored values each column holds under each key id\n"
            "rotate     re-encrypts every stored value that is not under the current\n"
            "           key, in batches of N rows (default %d), each its own short\n"
            "           transaction, while crier serve keeps running: every instance\n"
            "           must already run with the new key list. Safe to stop and run\n"
            "           again. --dry-run shows the counts and changes nothing.\n"
            "index-key  prints the blind index key in base64 on stdout: set it as\n"
            "           CRIER_BLIND_INDEX_KEY before the oldest key leaves the list.\n"
            "           It is a secret.\n"
            "link-key   prints the key of the signed links in messages (tracking,\n"
            "           unsubscribe, preference page) in base64 on stdout: set it as\n"
            "           CRIER_LINK_KEY before the oldest key leaves the list, or the\n"
            "           links of mail already sent stop working. It is a secret.\n",
            ROTATE_BATCH);
}

int keys_from_cfg(const cfg_t *cfg, cry_keys_t *keys, char *err, size_t errlen)
{
    memset(keys, 0, sizeof *keys);
    int one = cfg->encryption_key && cfg->encryption_key[0];
    int list = cfg->encryption_keys && cfg->encryption_keys[0];
    int index = cfg->blind_index_key && cfg->blind_index_key[0];
    char why[256];
    if (one && list) {
        snprintf(err, errlen,
                 "CRIER_ENCRYPTION_KEY and CRIER_ENCRYPTION_KEYS are both set: give only "
                 "CRIER_ENCRYPTION_KEYS (the current key first)");
        return -1;
    }
    if (!one && !list) {
        if (index) {
            snprintf(err, errlen,
                     "CRIER_BLIND_INDEX_KEY is set without CRIER_ENCRYPTION_KEYS or "
                     "CRIER_ENCRYPTION_KEY");
            return -1;
        }
        return 1;
    }
    if (one && cry_keys_load(keys, cfg->encryption_key, why, sizeof why) != 0) {
        snprintf(err, errlen, "CRIER_ENCRYPTION_KEY %s", why);
        return -1;
    }
    if (list && cry_keys_load_list(keys, cfg->encryption_keys, why, sizeof why) != 0) {
        snprintf(err, errlen, "CRIER_ENCRYPTION_KEYS %s", why);
        return -1;
    }
    if (index && cry_keys_set_index(keys, cfg->blind_index_key, why, sizeof why) != 0) {
        cry_keys_wipe(keys);
        snprintf(err, errlen, "CRIER_BLIND_INDEX_KEY %s", why);
        return -1;
    }
    if (cfg->link_key && cfg->link_key[0] &&
        cry_keys_set_link(keys, cfg->link_key, why, sizeof why) != 0) {
        cry_keys_wipe(keys);
        snprintf(err, errlen, "CRIER_LINK_KEY %s", why);
        return -1;
    }
    return 0;
}

/* What a key id is to the ring, for the status table. */
static const char *keys_mark(const cry_keys_t *keys, const char *key_id)
{
    if (!keys->loaded || !key_id[0])
        return "";
    if (strcmp(key_id, keys->key_id) == 0)
        return "  current";
    return cry_keys_has(keys, key_id) ? "  old" : "  NOT CONFIGURED";
}

/* Prints the tallies; returns the values not under the current key. */
static long keys_print_status(PGconn *conn, const cry_keys_t *keys, char *err, size_t errlen)
{
    rotate_tally_t *t = NULL;
    int n = 0;
    if (rotate_status(conn, &t, &n, err, errlen) != 0)
        return -1;
    long other = 0;
    printf("%-20s %-12s %-12s %10s\n", "table", "column", "key id", "values");
    for (int i = 0; i < n; i++) {
        char id[CRY_KEY_ID_MAX + 8];
        if (t[i].version[0])
            snprintf(id, sizeof id, "%s %s", t[i].version, t[i].key_id[0] ? t[i].key_id : "?");
        else
            snprintf(id, sizeof id, "%s", t[i].key_id[0] ? t[i].key_id : "(none)");
        printf("%-20s %-12s %-12s %10ld%s\n", t[i].table, t[i].column, id, t[i].values,
               keys_mark(keys, t[i].key_id));
        int current = keys->loaded && strcmp(t[i].key_id, keys->key_id) == 0 &&
                      (!t[i].version[0] || strcmp(t[i].version, "v2") == 0);
        if (t[i].version[0] && !current)
            other += t[i].values;
    }
    free(t);
    if (n == 0)
        printf("(no encrypted values stored)\n");
    return other;
}

static void keys_progress(void *arg, const char *table, long rows, long batches)
{
    (void)arg;
    printf("%s: %ld row(s) rotated (batch %ld)\n", table, rows, batches);
    fflush(stdout);
}

static double keys_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int keys_rotate(PGconn *conn, const cry_keys_t *keys, int batch, int dry_run)
{
    char err[1024];
    if (dry_run) {
        long other = keys_print_status(conn, keys, err, sizeof err);
        long pending[ENC_TABLES_MAX];
        if (other < 0 || rotate_pending(conn, keys, pending, err, sizeof err) != 0) {
            fprintf(stderr, "crier keys rotate: %s\n", err);
            return 1;
        }
        for (int i = 0; i < enc_tables_n; i++)
            printf("%s: %ld row(s) to rotate to key %s\n", enc_tables[i].table, pending[i],
                   keys->key_id);
        printf("dry run: nothing was changed\n");
        return 0;
    }
    rotate_result_t res;
    double t0 = keys_now();
    int rc = rotate_run(conn, keys, batch, keys_progress, NULL, &res, err, sizeof err);
    double secs = keys_now() - t0;
    long rows = 0;
    for (int i = 0; i < enc_tables_n; i++) {
        rows += res.rows[i];
        for (int f = 0; f < enc_tables[i].nfields; f++)
            printf("%s.%s_enc: %ld value(s) re-encrypted\n", enc_tables[i].table,
                   enc_tables[i].fields[f], res.values[i][f]);
    }
    printf("rotated %ld row(s) to key %s in %ld batch(es), %.2f s\n", rows, keys->key_id,
           res.batches, secs);
    if (rc != 0) {
        fprintf(stderr, "crier keys rotate: %s (what was committed stays: run it again)\n", err);
        return 1;
    }
    if (res.failed > 0) {
        fprintf(stderr,
                "crier keys rotate: %ld value(s) could not be decrypted and their rows were "
                "left as they were; the first: %s\n",
                res.failed, res.first_failure);
        return 1;
    }
    if (res.left > 0) {
        fprintf(stderr,
                "crier keys rotate: %ld row(s) are still under other keys (changed or held by "
                "other work on every pass): run crier keys rotate again\n",
                res.left);
        return 1;
    }
    printf("every stored value is under key %s\n", keys->key_id);
    return 0;
}

int cmd_keys(int argc, char **argv, cfg_t *cfg)
{
    if (argc < 2) {
        keys_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        keys_usage(stdout);
        return 0;
    }
    if (strcmp(sub, "status") != 0 && strcmp(sub, "rotate") != 0 && strcmp(sub, "index-key") != 0 &&
        strcmp(sub, "link-key") != 0) {
        fprintf(stderr, "crier keys: unknown sub-command \"%s\"\n", sub);
        keys_usage(stderr);
        return 2;
    }
    int batch = ROTATE_BATCH, dry_run = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            keys_usage(stdout);
            return 0;
        }
        if (strcmp(sub, "rotate") == 0 && strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
            continue;
        }
        if (strcmp(sub, "rotate") == 0 && strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (!end || *end || end == argv[i] || v < 1 || v > KEYS_BATCH_MAX) {
                fprintf(stderr,
                        "crier keys rotate: --batch \"%s\" is not a number of rows "
                        "from 1 to %d\n",
                        argv[i], KEYS_BATCH_MAX);
                return 2;
            }
            batch = (int)v;
            continue;
        }
        fprintf(stderr, "crier keys %s: unexpected argument \"%s\"\n", sub, argv[i]);
        keys_usage(stderr);
        return 2;
    }

    char err[1024];
    cry_keys_t keys;
    int loaded = keys_from_cfg(cfg, &keys, err, sizeof err);
    if (loaded < 0) {
        fprintf(stderr, "crier keys: %s\n", err);
        return 2;
    }
    /* status only counts, so it runs without keys (marking nothing) */
    if (loaded > 0 && strcmp(sub, "status") != 0) {
        fprintf(stderr,
                "crier keys %s: neither CRIER_ENCRYPTION_KEYS nor CRIER_ENCRYPTION_KEY "
                "is set\n",
                sub);
        return 2;
    }
    if (strcmp(sub, "index-key") == 0 || strcmp(sub, "link-key") == 0) {
        const unsigned char *key = strcmp(sub, "index-key") == 0 ? keys.index : keys.link;
        buf_t b;
        buf_init(&b, 64);
        int rc = b64_encode(&b, key, 32, 0);
        if (rc == 0) {
            printf("%s\n", b.data);
            fflush(stdout);
        }
        if (b.data)
            OPENSSL_cleanse(b.data, b.len);
        buf_free(&b);
        cry_keys_wipe(&keys);
        if (rc != 0) {
            fprintf(stderr, "crier keys %s: out of memory\n", sub);
            return 1;
        }
        return 0;
    }

    if (!cfg->database_url || !*cfg->database_url) {
        cry_keys_wipe(&keys);
        fprintf(stderr, "crier keys: CRIER_DATABASE_URL is not set\n");
        return 2;
    }
    PGconn *conn = db_connect(cfg->database_url, err, sizeof err);
    if (!conn) {
        cry_keys_wipe(&keys);
        fprintf(stderr, "crier keys: cannot connect: %s\n", err);
        return 1;
    }
    int code = 0;
    if (strcmp(sub, "status") == 0) {
        long other = keys_print_status(conn, &keys, err, sizeof err);
        if (other < 0) {
            fprintf(stderr, "crier keys status: %s\n", err);
            code = 1;
        } else if (keys.loaded && other > 0) {
            printf("%ld value(s) are not under the current key %s: crier keys rotate "
                   "re-encrypts them\n",
                   other, keys.key_id);
        } else if (keys.loaded) {
            printf("every stored value is under the current key %s\n", keys.key_id);
        }
    } else {
        code = keys_rotate(conn, &keys, batch, dry_run);
    }
    PQfinish(conn);
    cry_keys_wipe(&keys);
    return code;
}
