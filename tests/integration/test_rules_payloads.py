"""Rules that try to run past their budget, through the real binary:
`crier rules dry-run` and `crier rules test` must come back within a second
with an error that names the budget, and the dry-run must show the built-in
decision, wherever the payload sits — in channels.select (behind a guard,
so the set loads), at the top level of a rules file, in a cases file, or in
a case's call.

No database is touched: CRIER_DATABASE_URL points at a port nothing listens
on.
"""
import json
import os
import shutil
import subprocess
import resource
import sys
import tempfile

BIN = os.environ["CRIER_BIN"]
SRC = os.environ["CRIER_SOURCE_DIR"]
RULES = os.path.join(SRC, "rules")
ENV = dict(os.environ)
ENV["CRIER_DATABASE_URL"] = "postgresql://crier@127.0.0.1:1/nothing"
# What a bounded rule may cost the command that runs it, in CPU seconds:
# a runaway rule is a CPU-bound loop, and CPU time does not grow when a
# loaded machine makes the wall clock slow (an ASan build on two busy cores
# took 1.3 s of wall time for what costs well under this).
WITHIN_S = 1.0

# Each payload escapes the instruction count hook in the library the rules
# run on, unless the sandbox bounds it.
PAYLOADS = {
    "xpcall handler loop":
        "xpcall(function() while true do end end, function(e) while true do end end)",
    "coroutine.close handler loop":
        "local co = coroutine.create(function()\n"
        "  local g <close> = setmetatable({}, {__close = function() while true do end end})\n"
        "  while true do end end)\n"
        "coroutine.resume(co)\ncoroutine.close(co)",
    "coroutine.wrap close handler loop":
        "pcall(coroutine.wrap(function()\n"
        "  local g <close> = setmetatable({}, {__close = function() while true do end end})\n"
        "  while true do end end))",
    "string.rep of nothing": "local n = #string.rep('', math.maxinteger)",
    "method rep": "local n = #(''):rep(1e15)",
    "table.move": "table.move({}, 1, 1e15, 2, {})",
    "table.sort of one long string":
        "local big, t = string.rep('x', 2 * 1024 * 1024), {}\n"
        "for i = 1, 20000 do t[i] = big end\ntable.sort(t)",
    "patterned long find":
        "string.find(string.rep('a', 600000), string.rep('a', 300000) .. 'b.')",
    "long literal match":
        "string.match(string.rep('a', 200000), string.rep('a', 100000) .. 'b')",
}

REQUEST = {
    "plan_id": "5b1d2c3e-0000-4000-8000-000000000001",
    "client_id": "9c2e2c3e-0000-4000-8000-000000000002",
    "message_type": "reminder",
    "urgency": "normal",
    "client": {"name": "Asha Rao", "email": "asha@example.com", "timezone": "Asia/Kolkata"},
    "context": {"event_type": "wedding"},
}

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


def run(*args):
    """The command's result and the CPU seconds it used (user + system).
    The commands run one at a time, so the children's usage grows by this
    one alone."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r, cpu


def fresh_rules(tmp, name):
    d = os.path.join(tmp, name)
    shutil.copytree(RULES, d)
    return d


def append(path, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def dry_run(rules, req):
    r, took = run("rules", "dry-run", "--request", req, "--rules", rules)
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        out = {}
    return r, took, out


def main():
    tmp = tempfile.mkdtemp(prefix="crier-rules-payloads-")
    try:
        req = os.path.join(tmp, "request.json")
        with open(req, "w", encoding="utf-8") as f:
            json.dump(REQUEST, f)
        for label, code in PAYLOADS.items():
            indented = "\n".join("        " + line for line in code.splitlines())

            # 1. in select, behind a guard: the set loads, the reminder fails
            rules = fresh_rules(tmp, "select")
            append(os.path.join(rules, "channels.lua"),
                   "\nlocal shipped_select = select\nfunction select(msg, client)\n"
                   "    if msg.type == 'reminder' then\n%s\n    end\n"
                   "    return shipped_select(msg, client)\nend\n" % indented)
            r, took, out = dry_run(rules, req)
            check(took < WITHIN_S, "%s in select: dry-run took %.2f CPU s" % (label, took))
            check(r.returncode == 1 and "budget exceeded" in out.get("rules_error", ""),
                  "%s in select: exit %d, error %r" % (label, r.returncode,
                                                       out.get("rules_error", r.stderr)[:200]))
            check(out.get("rules_version") == "builtin-1",
                  "%s in select: the built-in decision is shown (%r)" % (label, out.get("rules_version")))

            # the same set's cases: one for the reminder fails, naming the budget
            append(os.path.join(rules, "tests", "zz_payload_cases.lua"),
                   "return {\n  { name = 'a reminder', now = '2026-06-03T09:00:00Z',\n"
                   "    msg = { type = 'reminder', urgency = 'normal' },\n"
                   "    client = { has_email = true, timezone = 'UTC' },\n"
                   "    expect = { channels = { 'email' } } },\n}\n")
            r, took = run("rules", "test", rules)
            check(took < WITHIN_S, "%s in a case's call: rules test took %.2f CPU s" % (label, took))
            check(r.returncode == 1 and "FAIL zz_payload_cases.lua #1" in r.stdout and
                  "budget exceeded" in r.stdout,
                  "%s in a case's call: exit %d, %r" % (label, r.returncode, r.stdout[-300:]))
            shutil.rmtree(rules)

            # 2. at the top level of a rules file: the load fails
            rules = fresh_rules(tmp, "toplevel")
            append(os.path.join(rules, "timing.lua"), "\n" + code + "\n")
            r, took, out = dry_run(rules, req)
            check(took < WITHIN_S, "%s at load: dry-run took %.2f CPU s" % (label, took))
            check(r.returncode == 2 and "budget exceeded" in r.stderr and "timing.lua" in r.stderr,
                  "%s at load: exit %d, %r" % (label, r.returncode, r.stderr[:200]))
            check(out.get("rules_version") == "builtin-1",
                  "%s at load: the built-in decision is shown" % label)
            r, took = run("rules", "test", rules)
            check(took < WITHIN_S and r.returncode == 2 and "budget exceeded" in r.stderr,
                  "%s at load: rules test exit %d after %.2f s: %r"
                  % (label, r.returncode, took, r.stderr[:200]))
            shutil.rmtree(rules)

            # 3. at the top level of a cases file
            rules = fresh_rules(tmp, "cases")
            append(os.path.join(rules, "tests", "zz_payload_cases.lua"), code + "\nreturn {}\n")
            r, took = run("rules", "test", rules)
            check(took < WITHIN_S, "%s in a cases file: rules test took %.2f CPU s" % (label, took))
            check(r.returncode == 2 and "budget exceeded" in r.stderr and
                  "zz_payload_cases.lua" in r.stderr,
                  "%s in a cases file: exit %d, %r" % (label, r.returncode, r.stderr[:200]))
            shutil.rmtree(rules)
            print("ok   %s" % label, flush=True)

        # A plain find of a long needle is not a payload any more: memmem is
        # linear, so it answers quickly and the rules decide.
        # (The clock is generous: a sanitizer build copies megabytes slowly.)
        rules = fresh_rules(tmp, "plain")
        append(os.path.join(rules, "channels.lua"),
               "\nlocal shipped_select = select\nfunction select(msg, client)\n"
               "    if msg.type == 'reminder' then\n"
               "        local hay = string.rep('a', 600000)\n"
               "        assert(string.find(hay, string.rep('a', 300000) .. 'b', 1, true) == nil)\n"
               "    end\n"
               "    return shipped_select(msg, client)\nend\n")
        ENV["CRIER_RULES_TIME_MS"] = "2000"
        r, took, out = dry_run(rules, req)
        del ENV["CRIER_RULES_TIME_MS"]
        check(took < WITHIN_S and r.returncode == 0 and out.get("rules_version") != "builtin-1",
              "a long plain find answers from the rules in %.2f CPU s (exit %d, %r)"
              % (took, r.returncode, out.get("rules_error")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
