// Runs the event-planning graph for one plan against a crier, and resumes
// it when crier calls back with the client's choice.
//
//   CRIER_URL, CRIER_TOKEN      the crier API and a workflow token
//   CRIER_CALLBACK_SECRET       the secret crier signs callbacks with
//   RECEIVER_PORT               where this process listens for callbacks
//                               (crier's CRIER_WORKFLOW_CALLBACK_URL is
//                               http://127.0.0.1:PORT/crier)
//   PLAN_FILE                   JSON: {plan_id, client_id, client, channel,
//                               event, vendor_combinations}
//
// Prints one JSON line per milestone on stdout: {"listening"}, {"interrupted"},
// {"resumed"}, {"done"}; a callback whose signature does not verify is
// refused with 401 and printed as {"refused"}.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { Command } from "@langchain/langgraph";

import { createClient, verifyCallback } from "../../clients/js/index.js";
import { buildGraph } from "./graph.mjs";

const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const need = (name) => {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`run.mjs: ${name} is not set\n`);
    process.exit(2);
  }
  return v;
};

const crier = createClient({ baseUrl: need("CRIER_URL"), apiKey: need("CRIER_TOKEN") });
const secret = need("CRIER_CALLBACK_SECRET");
const plan = JSON.parse(readFileSync(need("PLAN_FILE"), "utf8"));
const graph = buildGraph(crier);
const config = { configurable: { thread_id: plan.plan_id } };

let waitingFor = null; // the vendor options' communication id while interrupted
let finished;
const done = new Promise((resolve) => (finished = resolve));

// A callback resumes the run only when it is the client's answer to the
// message the run is waiting on; everything else is acknowledged and kept
// for the log (the receiver de-duplicates on event_id: crier may resend).
const seen = new Set();
async function onCallback(body) {
  if (seen.has(body.event_id)) return;
  seen.add(body.event_id);
  if (body.type !== "client_action" || !waitingFor || body.communication_id !== waitingFor) return;
  waitingFor = null;
  say({ resumed: true, action: body.action, value: body.value, channel: body.channel });
  const state = await graph.invoke(new Command({ resume: body.value }), config);
  finished(state);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    if (!verifyCallback(req.headers, raw, secret)) {
      say({ refused: true });
      res.writeHead(401).end();
      return;
    }
    res.writeHead(204).end();
    onCallback(JSON.parse(raw.toString("utf8"))).catch((e) => {
      process.stderr.write(`run.mjs: resuming failed: ${e.stack || e}\n`);
      process.exit(1);
    });
  });
});

server.listen(Number(need("RECEIVER_PORT")), "127.0.0.1", async () => {
  say({ listening: true });
  const state = await graph.invoke(
    {
      plan_id: plan.plan_id,
      client_id: plan.client_id,
      client: plan.client,
      channel: plan.channel ?? null,
      event: plan.event,
      vendor_combinations: plan.vendor_combinations,
    },
    config,
  );
  const snapshot = await graph.getState(config);
  const pending = snapshot.tasks.flatMap((t) => t.interrupts ?? [])[0];
  if (!pending) {
    finished(state);
  } else {
    waitingFor = pending.value.communication_id;
    say({ interrupted: true, communication_id: waitingFor, communications: state.communications });
  }
  const final = await done;
  say({
    done: true,
    selection: final.selection?.number ?? null,
    error: final.error ?? null,
    communications: final.communications,
  });
  server.close();
});
