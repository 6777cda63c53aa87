"""The operator console in headless Chromium (tests/browser/console.mjs,
playwright-core driving Debian's chromium), against a real crier and a
database seeded with 3,000 communications over 90 days, three channels and
every outcome (tests/bench/analytics_rows.sql, the analytics benchmark's
rows at a smaller count), a few of them failed and in the review queue:

* it signs in with the operator token through the login form, opens every
  view, finds each chart drawn with data and axe-core finding no serious or
  critical violation, and leaves a screenshot of each in the build tree
  (artifacts/console-*.png);
* the overview's figures are the analytics API's for the same period;
* it searches a plan, opens a communication's timeline, runs a dry run,
  retries an item of the review queue (which the database then shows as
  retried) and downloads the history's CSV, which parses;
* the overview's PDF report opens with poppler (pdftotext, pdftoppm),
  holds the same figures and shows its charts;
* the overview fits a phone's width.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ROWS = 3000
FIGURES = ("total", "sent", "delivered", "delivery_rate", "open_rate", "click_through_rate",
           "response_rate", "failure_rate", "fallback_rate")


def seed(db):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    script = os.path.join(h.source_dir(), "tests", "bench", "analytics_rows.sql")
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "n=%d" % ROWS,
                        "-v", "now=" + now, "-d", db, "-f", script],
                       capture_output=True, text=True, timeout=300, env=h.base_env())
    assert r.returncode == 0, r.stderr
    # the seeded rows still queued are not due: no worker turns them into
    # failures (of clients without contact details) while the test reads
    h.psql(db, "UPDATE communications SET next_attempt_at = '2099-01-01'"
               " WHERE status IN ('pending', 'queued')")
    # a few failures for the review queue (the trigger opens their review)
    h.psql(db, "UPDATE communications SET status = 'failed', error_message = 'transient: smtp 451'"
               " WHERE id IN (SELECT id FROM communications WHERE status = 'sent'"
               " ORDER BY created_at DESC LIMIT 5)")
    n = int(h.psql(db, "SELECT count(*) FROM communications WHERE review = 'open'")[0][0])
    assert n >= 5, n


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM (P6), as pdftoppm writes it."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval, blank-separated
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P6" and fields[3] == b"255", fields
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + 3 * w * h]


def near(rgb, want, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(rgb, want))


def day(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def test_console_in_a_browser(tmp):
    db = h.new_database("console")
    seed(db)
    artifacts = os.path.join(h.build_dir(), "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    receiver = h.CallbackReceiver(os.path.join(tmp, "workflow"))
    env = {"CRIER_WORKFLOW_CALLBACK_URL": receiver.url,
           "CRIER_WORKFLOW_CALLBACK_SECRET": "console-test-callback-secret-0123"}
    with receiver, h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
        # a plan of real messages, decided by the rules: the one searched for
        plan = None
        for i in range(3):
            body = h.comm_body(9000 + i, message_type=("welcome", "budget_summary", "vendor_options")[i])
            if plan:
                body["plan_id"] = plan
            status, _, js = crier.post_comm(body)
            assert status == 202, js
            plan = body["plan_id"]
            crier.wait_final([js["communication_id"]])
        script = os.path.join(h.source_dir(), "tests", "browser", "console.mjs")
        r = subprocess.run(["node", script, crier.url, h.TOKEN_OPERATOR, artifacts, plan],
                           capture_output=True, text=True, timeout=300,
                           cwd=os.path.dirname(script), env=h.base_env())
        assert r.returncode == 0, "console.mjs failed:\n%s\n%s" % (r.stdout[-2000:], r.stderr[-4000:])
        seen = json.loads(r.stdout.strip().splitlines()[-1])

        # the overview's figures are the API's for the period it showed,
        # asked by the page's session the moment it was drawn (the retry
        # below changes them after)
        overview = seen["views"]["overview"]
        summary = overview["api"]
        shown = overview["figures"]
        for k in FIGURES:
            want = summary[k]
            got = shown.get(k)
            if want is None:
                assert got in ("", None), (k, got)
            else:
                assert got not in ("", None) and abs(float(got) - float(want)) < 1e-9, (k, got, want)
        # and the API's total is the rows of those 30 days, counted here
        now = time.time()
        frm, to = day(now - 29 * 86400) + "T00:00:00Z", day(now + 86400) + "T00:00:00Z"
        assert overview["range"] == "from=%s&to=%s" % (frm.replace(":", "%3A"), to.replace(":", "%3A")), \
            overview["range"]
        rows = int(h.psql(db, "SELECT count(*) FROM communications WHERE created_at >= :'f'"
                              " AND created_at < :'t'", f=frm, t=to)[0][0])
        assert summary["total"] == rows > 0, (summary["total"], rows)

        # the PDF report the overview links to: poppler reads it, it holds
        # the same figures, and its charts are drawn (pixels of the series'
        # colours on the rendered page)
        pdf = os.path.join(artifacts, "console-overview.pdf")
        text = subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True,
                              timeout=60, check=True).stdout
        assert "Delivery rate" in text and "Sent and delivered per day" in text, text[:800]
        assert "%.1f %%" % (100 * summary["delivery_rate"]) in text, text[:800]
        assert "{:,}".format(summary["total"]).replace(",", "") in text.replace(",", ""), text[:800]
        page = os.path.join(tmp, "report")
        subprocess.run(["pdftoppm", "-r", "50", "-singlefile", pdf, page], check=True, timeout=60)
        width, height, pixels = read_ppm(page + ".ppm")
        blue = sum(1 for i in range(0, len(pixels), 3) if near(pixels[i:i + 3], (11, 92, 173)))
        orange = sum(1 for i in range(0, len(pixels), 3) if near(pixels[i:i + 3], (194, 65, 12)))
        assert blue > 200 and orange > 200, (blue, orange, width, height)

        charts = {v: [c["label"] for c in info.get("charts", [])] for v, info in seen["views"].items()}
        assert all(charts[v] for v in ("overview", "channels", "timeline", "funnel", "preferences")), charts
        assert seen["history_rows"] > 0 and seen["csv_lines"] == seen["history_rows"] + 1, seen
        assert seen["history_rows"] == 3, seen["history_rows"]
        assert seen["timeline_events"] > 0 and seen["trace_steps"] > 0, seen
        assert seen["dry_run"].startswith("Decision: ") and seen["client_rows"] > 0, seen
        # the communication's message as the live templates render it, and
        # the callbacks it raised to the workflow (the receiver here)
        assert "Planiva" in seen["preview"] or len(seen["preview"]) > 40, seen["preview"]
        assert seen["callbacks_rows"] > 0, seen
        review = h.psql(db, "SELECT review FROM communications WHERE id = :'id'", id=seen["retried"])
        assert review == [["retried"]], review
        shots = sorted(n for n in os.listdir(artifacts) if n.startswith("console-") and n.endswith(".png"))
        assert len(shots) >= 10, shots
        print("views: %s; overview total %d, delivery rate %s; history %d rows for plan %s; "
              "screenshots %s" % (sorted(seen["views"]), summary["total"], summary["delivery_rate"],
                                  seen["history_rows"], plan[:8], ", ".join(shots)))


h.run([test_console_in_a_browser])
