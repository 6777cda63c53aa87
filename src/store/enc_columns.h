/* enc_columns: every encrypted column of crier's tables, in one list, for
 * the steps that walk them all: the rewrite of v1 tokens (migrate_tokens.c),
 * the re-encryption under the current key (rotate.c) and its counts.
 *
 * Field f of a table is the column f_enc, whose tokens are bound to the
 * place (table, f, id::text). A column added to the data model is added
 * here, or a rotation would leave it under the old key. */
#ifndef CRIER_ENC_COLUMNS_H
#define CRIER_ENC_COLUMNS_H

#define ENC_FIELDS_MAX 3
#define ENC_TABLES_MAX 8

typedef struct enc_table {
    const char *table;
    const char *id_type; /* the primary key's type: how an id in text is cast back */
    const char *fields[ENC_FIELDS_MAX];
    int nfields;
    int key_id; /* 1: a key_id column names the key of the row's last write */
    int v1;     /* 1: written before 005_bound_tokens.sql, so may hold v1 tokens */
} enc_table_t;

extern const enc_table_t enc_tables[];
extern const int enc_tables_n;

#endif
