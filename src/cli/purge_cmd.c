/* crier purge: the retention purge by hand or from a scheduler, with a dry
 * run that only counts (store/purge.h says what goes). */
#include "cli/commands.h"
#include "store/db.h"
#include "store/purge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void purge_cmd_usage(FILE *f)
{
    fprintf(f,
            "usage: crier purge [--dry-run] [--batch N]\n"
            "\n"
            "Deletes what is older than CRIER_RETENTION_DAYS (730 by default):\n"
            "communications in a final status (sent, delivered, opened, clicked, failed,\n"
            "bounced, skipped) with their delivery events, attachments and callbacks, a\n"
            "digest together with its members, stray delivery events, inbound messages,\n"
            "finished workflow callbacks and unmatched receipts; and clients erased more\n"
            "than %d days ago with everything of theirs. A message still in flight\n"
            "(pending, queued, sending, batched) is never deleted, nor one whose reply has\n"
            "not reached the workflow yet. audit_log is kept.\n"
            "\n"
            "  --dry-run   count what would be deleted; change nothing\n"
            "  --batch N   rows per transaction (1..%d, default %d)\n"
            "\n"
            "Each batch is its own short transaction. One purge runs at a time (advisory\n"
            "lock %s): while another runs, this one says so and exits 0. crier serve\n"
            "runs the same purge every CRIER_PURGE_INTERVAL_S seconds (a day; 0: never).\n"
            "Progress goes to stderr, the summary to stdout.\n",
            PURGE_ERASED_DAYS, PURGE_BATCH_MAX, PURGE_BATCH_DEFAULT, PURGE_LOCK_KEY);
}

/* One line per batch: which step, and what it deleted. */
static void purge_cmd_progress(void *arg, long batch, const char *step, const purge_counts_t *rows)
{
    (void)arg;
    fprintf(stderr, "purge: batch %ld (%s):", batch, step);
    const char *sep = " ";
    for (int t = 0; t < PURGE_TABLES_N; t++) {
        if (!rows->rows[t])
            continue;
        fprintf(stderr, "%s%s %lld", sep, purge_table_name((purge_table_t)t), rows->rows[t]);
        sep = ", ";
    }
    fputc('\n', stderr);
}

static int purge_cmd_batch(const char *v, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < 1 || n > PURGE_BATCH_MAX)
        return -1;
    *out = (int)n;
    return 0;
}

int cmd_purge(int argc, char **argv, cfg_t *cfg)
{
    purge_opts_t o = {.retention_days = cfg->retention_days, .progress = purge_cmd_progress};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            purge_cmd_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--dry-run") == 0) {
            o.dry_run = 1;
            continue;
        }
        if (strcmp(argv[i], "--batch") == 0) {
            if (i + 1 >= argc || purge_cmd_batch(argv[i + 1], &o.batch) != 0) {
                fprintf(stderr, "crier purge: --batch needs a number of rows from 1 to %d\n",
                        PURGE_BATCH_MAX);
                return 2;
            }
            i++;
            continue;
        }
        fprintf(stderr, "crier purge: unexpected argument \"%s\"\n", argv[i]);
        purge_cmd_usage(stderr);
        return 2;
    }
    if (!cfg->database_url || !*cfg->database_url) {
        fprintf(stderr, "crier purge: CRIER_DATABASE_URL is not set\n");
        return 2;
    }
    char err[1024];
    PGconn *conn = db_connect(cfg->database_url, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "crier purge: cannot connect: %s\n", err);
        return 1;
    }
    purge_counts_t done;
    int rc = purge_run(conn, &o, &done, err, sizeof err);
    PQfinish(conn);
    if (rc == PURGE_BUSY) {
        printf("another purge is running: nothing done\n");
        return 0;
    }
    if (!done.horizon[0]) {
        fprintf(stderr, "crier purge: %s\n", err);
        return 1;
    }
    printf("retention: rows older than %s (%d days), clients erased before %s\n", done.horizon,
           o.retention_days, done.erased_horizon);
    long long total = 0;
    for (int t = 0; t < PURGE_TABLES_N; t++) {
        printf("%s: %lld %s\n", purge_table_name((purge_table_t)t), done.rows[t],
               o.dry_run ? "to delete" : "deleted");
        total += done.rows[t];
    }
    if (o.dry_run)
        printf("total: %lld rows to delete (dry run: nothing was changed)\n", total);
    else
        printf("total: %lld rows deleted in %ld batch(es)\n", total, done.batches);
    if (rc != PURGE_DONE) {
        /* what the batches before the error deleted is committed */
        fprintf(stderr, "crier purge: %s\n", err);
        return 1;
    }
    return 0;
}
