// The event-planning workflow's six trigger points as a LangGraph.js graph.
// Each node asks crier to reach the client; after the vendor options the
// graph interrupts until the client chooses (a click on the email's button,
// a WhatsApp button or an SMS reply "2", which crier turns into one signed
// client_action callback), then confirms the selection and delivers the
// blueprint. A failed step reaches the client as an error notification.
import { Annotation, END, MemorySaver, START, StateGraph, interrupt } from "@langchain/langgraph";

// Seed "State Management": the workflow's state, with the results of every
// crier call kept in a list that each node appends to.
export const WorkflowState = Annotation.Root({
  plan_id: Annotation(),
  client_id: Annotation(),
  client: Annotation(),
  channel: Annotation(), // the channel the client asked to be reached on, or null
  event: Annotation(),
  vendor_combinations: Annotation(),
  selection: Annotation(),
  error: Annotation(),
  communications: Annotation({
    reducer: (left, right) => left.concat(Array.isArray(right) ? right : [right]),
    default: () => [],
  }),
});

// One crier call of a node: the step name makes the idempotency key, so a
// node that runs again (a resumed or retried run) sends nothing twice. The
// message's context is the event's words for that type (state.event.contexts)
// with what the run learned on top.
async function reach(crier, state, step, message_type, context, extra = {}) {
  const res = await crier.createCommunication(
    {
      plan_id: state.plan_id,
      client_id: state.client_id,
      message_type,
      client: state.client,
      preferred_channel: state.channel ?? null,
      context: {
        event_type: state.event.type,
        event_date: state.event.date,
        ...(state.event.contexts?.[message_type] ?? {}),
        ...context,
      },
      ...extra,
    },
    { step },
  );
  return { step, message_type, communication_id: res.communication_id, status: res.status };
}

export function buildGraph(crier, { checkpointer = new MemorySaver() } = {}) {
  const g = new StateGraph(WorkflowState)
    .addNode("plan_created", async (s) => ({
      communications: await reach(crier, s, "plan_created", "welcome", {}),
    }))
    // the seed's budget_allocation_node: reach the client once the budget is ready
    .addNode("budget_ready", async (s) => ({
      communications: await reach(crier, s, "budget_ready", "budget_summary", {}),
    }))
    .addNode("vendor_options_ready", async (s) => ({
      communications: await reach(crier, s, "vendor_options_ready", "vendor_options", {
        vendor_combinations: s.vendor_combinations,
      }),
    }))
    // Seed "client_selection": wait for the client's answer. interrupt()
    // stops the run here; Command({resume}) comes back with the value of
    // the client_action callback (the chosen combination, 1-based).
    .addNode("client_selection", async (s) => {
      const asked = s.communications.find((c) => c.message_type === "vendor_options");
      const value = interrupt({ waiting_for: "client_action", communication_id: asked?.communication_id });
      const n = Number.parseInt(String(value), 10);
      const chosen = s.vendor_combinations[n - 1];
      if (!chosen) return { error: `the client chose ${value}, which is not an option` };
      return { selection: { number: n, ...chosen } };
    })
    .addNode("vendors_selected", async (s) => ({
      communications: await reach(crier, s, "vendors_selected", "selection_confirmation", {
        total_cost: s.selection.total_cost,
        selected_vendors: s.selection.vendors,
      }),
    }))
    .addNode("blueprint_ready", async (s) => ({
      communications: await reach(crier, s, "blueprint_ready", "blueprint_delivery", {}),
    }))
    .addNode("error_occurred", async (s) => ({
      communications: await reach(crier, s, "error_occurred", "error_notification", {
        error_summary: s.error,
      }),
    }))
    .addEdge(START, "plan_created")
    .addEdge("plan_created", "budget_ready")
    .addEdge("budget_ready", "vendor_options_ready")
    .addEdge("vendor_options_ready", "client_selection")
    .addConditionalEdges("client_selection", (s) => (s.error ? "error_occurred" : "vendors_selected"))
    .addEdge("vendors_selected", "blueprint_ready")
    .addEdge("blueprint_ready", END)
    .addEdge("error_occurred", END);
  return g.compile({ checkpointer });
}
