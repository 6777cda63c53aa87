"""Helpers of the P3 intake benchmark (tests/bench/p3_intake.sh).

    p3_prepare.py body SOURCE_DIR OUT
        writes the request body wrk sends: a welcome communication for a new
        client, with @CLIENT_ID@ and @PLAN_ID@ where each request's ids go.

    p3_prepare.py pgbench DB_URL OUT
        writes the pgbench script of the reference: the same rows crier's
        intake committed for one request, inserted again with fresh ids in one
        statement (so one transaction per request). Which tables and how many
        rows per request is read from what crier wrote during the wrk run, and
        the values are copied from one of its requests, so the columns and the
        row sizes are the same.
"""

import json
import os
import subprocess
import sys

# Columns that must be unique per request, and what pgbench puts there.
FRESH_UUID = "gen_random_uuid()"


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          "-d", url, "-f", "-"], input=sql, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def write_body(source, out):
    ctx = {"event_type": "wedding", "event_date": "2027-02-14"}
    path = os.path.join(source, "templates", "examples", "welcome.json")
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and isinstance(data.get("context"), dict) and len(data) <= 2:
            data = data["context"]
        if isinstance(data, dict):
            ctx = data
    body = {
        "plan_id": "@PLAN_ID@",
        "client_id": "@CLIENT_ID@",
        "message_type": "welcome",
        "urgency": "normal",
        "preferred_channel": None,
        "client": {"name": "Bench Client", "email": "bench.client@example.com",
                   "timezone": "UTC", "locale": "en",
                   "consent": {"sms": False, "whatsapp": False}},
        "context": ctx,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(body, f)


def columns(url, table):
    """[(name, data_type, has_serial_default)] in table order."""
    rows = psql(url, """
        SELECT column_name, data_type, coalesce(column_default, '') LIKE 'nextval(%%'
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = '%s'
          AND is_generated = 'NEVER'
        ORDER BY ordinal_position""" % table)
    return [(r[0], r[1], r[2] == "t") for r in rows]


def write_pgbench(url, out):
    n_comm = int(psql(url, "SELECT count(*) FROM communications")[0][0])
    if n_comm == 0:
        raise SystemExit("p3_prepare: crier committed no communications; nothing to copy")
    sample = psql(url, "SELECT id, client_id FROM communications ORDER BY created_at LIMIT 1")[0]
    comm_id, client_id = sample

    # Tables crier wrote to during the run, and rows per request.
    tables = [r[0] for r in psql(url, """
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
          AND table_name NOT IN ('schema_migrations')
          AND table_name NOT LIKE 'p3_%'
        ORDER BY table_name""")]
    plan = []  # (table, key column, key value, copies)
    for t in tables:
        cols = [c[0] for c in columns(url, t)]
        n = int(psql(url, "SELECT count(*) FROM %s" % t)[0][0])
        per_request = round(n / n_comm)
        if per_request < 1:
            continue
        if t == "communications":
            plan.append((t, "id", comm_id))
        elif t == "clients":
            plan.append((t, "id", client_id))
        elif "communication_id" in cols:
            plan.append((t, "communication_id", comm_id))
        elif "client_id" in cols:
            plan.append((t, "client_id", client_id))
    names = [p[0] for p in plan]
    if "communications" not in names:
        raise SystemExit("p3_prepare: no communications row to copy")

    ctes = []
    sources = []  # template tables to make
    for table, key, value in plan:
        tpl = "p3_tpl_%s" % table
        sources.append("DROP TABLE IF EXISTS %s;\nCREATE TABLE %s AS SELECT * FROM %s WHERE %s = '%s';"
                       % (tpl, tpl, table, key, value))
        select = []
        insert_cols = []
        for name, dtype, serial in columns(url, table):
            if serial:
                continue  # the sequence gives a fresh one, as it did for crier
            insert_cols.append(name)
            if table in ("clients", "communications") and name == "id":
                select.append("new_%s.id" % table)
            elif name == "client_id":
                select.append("new_clients.id" if "clients" in names else "t.client_id")
            elif name == "communication_id":
                select.append("new_communications.id")
            # a template_id names the catalogue's row every request shares
            elif name == "plan_id" or (dtype == "uuid" and name.endswith("_id")
                                       and name not in ("batch_id", "template_id", "client_id",
                                                        "communication_id")):
                select.append(FRESH_UUID)
            elif name == "idempotency_key":
                select.append("'pgb-' || gen_random_uuid()::text")
            elif dtype.startswith("timestamp") and name in ("created_at", "updated_at", "send_at",
                                                            "next_attempt_at", "event_timestamp"):
                select.append("now()")
            else:
                select.append("t.%s" % name)
        ctes.append((table, insert_cols, select, tpl))

    # Rows that others reference go first: clients, then communications.
    order = {"clients": 0, "communications": 1}
    ctes.sort(key=lambda c: order.get(c[0], 2))
    ids = ["new_clients AS (SELECT gen_random_uuid() AS id)"] if "clients" in names else []
    ids.append("new_communications AS (SELECT gen_random_uuid() AS id)")
    parts = []
    for i, (table, cols, select, tpl) in enumerate(ctes):
        src = ", ".join(["%s t" % tpl] + [x.split(" AS")[0] for x in ids])
        parts.append("INSERT INTO %s (%s) SELECT %s FROM %s"
                     % (table, ", ".join(cols), ", ".join(select), src))
    # A single statement: data-modifying CTEs run in one implicit transaction,
    # one commit, as a request that is not group-committed would be.
    stmt = "WITH " + ", ".join(ids)
    for i, p in enumerate(parts[:-1]):
        stmt += ", w%d AS (%s)" % (i, p)
    stmt += " " + parts[-1] + ";"
    with open(out, "w", encoding="utf-8") as f:
        f.write(stmt.replace("\n", " ") + "\n")
    # The template tables hold one request's rows, made before pgbench runs.
    psql(url, "\n".join(sources))
    print("p3_prepare: pgbench inserts per transaction: %s" % ", ".join(c[0] for c in ctes))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "body":
        write_body(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "pgbench":
        write_pgbench(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
