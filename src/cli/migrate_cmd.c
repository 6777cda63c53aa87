/* crier migrate: applies the SQL migrations to CRIER_DATABASE_URL, then
 * rewrites what needs the encryption key (migrate_tokens). */
#include "cli/commands.h"
#include "crypto/crypto.h"
#include "store/db.h"
#include "store/migrate.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void migrate_cmd_usage(FILE *f)
{
    fprintf(f, "usage: crier migrate [--dir DIR]\n"
               "\n"
               "Applies the numbered SQL files (NNN_name.sql) that the database has not\n"
               "seen yet, each in its own transaction, under an advisory lock so that\n"
               "instances starting together apply each file once.\n"
               "\n"
               "The directory is, in order: --dir, CRIER_SQL_DIR, ./sql, or the sql/\n"
               "directory beside the directory of the executable. The database is\n"
               "CRIER_DATABASE_URL.\n"
               "\n"
               "Then, in batches of rows, each in its own transaction: encrypted fields\n"
               "written before they were bound to their row (\"v1.\" tokens) are\n"
               "re-encrypted bound to it, clear subjects and undelivered callback bodies\n"
               "are encrypted, and delivered callbacks keep only their ids. This needs\n"
               "the encryption key (CRIER_ENCRYPTION_KEYS or CRIER_ENCRYPTION_KEY)\n"
               "whenever such rows exist, and is safe to repeat:\n"
               "rows already done are skipped. crier serve reads only bound tokens, so\n"
               "run this after the last instance of an older crier has stopped.\n");
}

static int migrate_cmd_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Fills out with the sql/ directory next to the executable's directory (the
 * binary is build/crier, the migrations are sql/ in the same tree). */
static int migrate_cmd_exe_sql(char *out, size_t outlen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *dir = dirname(exe);
    if (snprintf(out, outlen, "%s/../sql", dir) >= (int)outlen)
        return -1;
    return migrate_cmd_is_dir(out) ? 0 : -1;
}

int cmd_migrate(int argc, char **argv, cfg_t *cfg)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            migrate_cmd_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
            continue;
        }
        fprintf(stderr, "crier migrate: unexpected argument \"%s\"\n", argv[i]);
        migrate_cmd_usage(stderr);
        return 2;
    }

    char found[PATH_MAX + 16];
    if (!dir) {
        const char *env = getenv("CRIER_SQL_DIR");
        if (env && *env)
            dir = env;
        else if (migrate_cmd_is_dir("sql"))
            dir = "sql";
        else if (migrate_cmd_exe_sql(found, sizeof found) == 0)
            dir = found;
        else {
            fprintf(stderr, "crier migrate: no sql directory found (use --dir or CRIER_SQL_DIR)\n");
            return 2;
        }
    }

    if (!cfg->database_url || !*cfg->database_url) {
        fprintf(stderr, "crier migrate: CRIER_DATABASE_URL is not set\n");
        return 2;
    }
    char err[1024];
    /* The key is optional here: a database with nothing to re-encrypt (a
     * new one) migrates without it; migrate_tokens says when it is needed. */
    cry_keys_t keys;
    if (keys_from_cfg(cfg, &keys, err, sizeof err) < 0) {
        fprintf(stderr, "crier migrate: %s\n", err);
        return 2;
    }
    PGconn *conn = db_connect(cfg->database_url, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "crier migrate: cannot connect: %s\n", err);
        cry_keys_wipe(&keys);
        return 1;
    }
    int applied = 0;
    int rc = migrate_run(conn, dir, &applied, err, sizeof err);
    if (rc != 0) {
        PQfinish(conn);
        cry_keys_wipe(&keys);
        fprintf(stderr, "crier migrate: %s\n", err);
        if (applied > 0)
            fprintf(stderr, "crier migrate: %d migration(s) were applied before the error\n",
                    applied);
        return 1;
    }
    if (applied == 0)
        printf("schema up to date\n");
    else
        printf("applied %d migration(s)\n", applied);
    migrate_tokens_t done;
    rc = migrate_tokens(conn, keys.loaded ? &keys : NULL, 0, &done, err, sizeof err);
    PQfinish(conn);
    cry_keys_wipe(&keys);
    /* what a failed run did is committed (one transaction per batch) and is
     * skipped by the next */
    if (done.clients + done.inbound + done.subjects + done.callbacks + done.callbacks_cleared > 0)
        printf("re-encrypted %ld client(s), %ld inbound message(s), %ld subject(s), "
               "%ld callback(s); cleared %ld delivered callback(s)\n",
               done.clients, done.inbound, done.subjects, done.callbacks, done.callbacks_cleared);
    if (rc != 0) {
        fprintf(stderr, "crier migrate: %s\n", err);
        return 1;
    }
    return 0;
}
