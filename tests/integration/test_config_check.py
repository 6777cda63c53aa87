"""crier config check, against the binary and a real PostgreSQL and Redis:

* with working settings it prints every setting, secrets as "set" and never
  their text, checks that the database and Redis answer, and exits 0;
* a rules directory that does not load, an unusable DKIM key file, a URL
  that is not one and a database that does not answer are each named on a
  FAIL line, exit 2;
* a bad value in the configuration file is refused naming the file and the
  line, exit 2.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "workflow:cfg-check-secret-token-0123456789"


def check(env, args=()):
    full = {"CRIER_RULES_DIR": os.path.join(h.source_dir(), "rules"),
            "CRIER_TEMPLATES_DIR": os.path.join(h.source_dir(), "templates")}
    full.update(env)
    return subprocess.run([h.crier_bin(), "config", "check"] + list(args), capture_output=True,
                          text=True, timeout=60, env=h.base_env(full))


def test_good_settings(tmp):
    r = check({"CRIER_DATABASE_URL": h.env_db_url(), "CRIER_REDIS_URL": h.env_redis_url(),
               "CRIER_API_TOKENS": SECRET})
    print(r.stdout[-600:])
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "ok   the database answers" in r.stdout
    assert "ok   Redis answers" in r.stdout
    assert "ok   the rules load" in r.stdout and "ok   the templates load" in r.stdout
    line = [x for x in r.stdout.splitlines() if "CRIER_API_TOKENS" in x][0]
    assert line.split()[1:] == ["set", "(secret)"], line
    assert "cfg-check-secret" not in r.stdout + r.stderr
    assert "configuration ok" in r.stdout


def test_problems_are_named(tmp):
    key = os.path.join(tmp, "not-a-key.pem")
    with open(key, "w") as f:
        f.write("hello\n")
    dead = "postgresql://nobody@127.0.0.1:%d/none?connect_timeout=2" % h.free_port()
    r = check({"CRIER_DATABASE_URL": dead, "CRIER_RULES_DIR": os.path.join(tmp, "missing"),
               "CRIER_DKIM_KEY_FILE": key, "CRIER_DKIM_SELECTOR": "s1",
               "CRIER_PUBLIC_URL": "crier.example"})
    assert r.returncode == 2, (r.stdout, r.stderr)
    fails = [x for x in r.stdout.splitlines() if x.startswith("FAIL")]
    assert any("the rules load" in x and "channels.lua" in x for x in fails), fails
    assert any("DKIM key" in x and "not-a-key.pem" in x for x in fails), fails
    assert any("CRIER_PUBLIC_URL" in x for x in fails), fails
    assert any("the database answers" in x for x in fails), fails
    assert "configuration has problems" in r.stdout


def test_bad_file_value(tmp):
    path = os.path.join(tmp, "crier.conf")
    with open(path, "w") as f:
        f.write("# settings\nworkers = many\n")
    r = check({}, ["--config", path, "--offline"])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert path + ":2" in r.stderr and "workers" in r.stderr, r.stderr


h.run([test_good_settings, test_problems_are_named, test_bad_file_value])
