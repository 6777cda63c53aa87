// Types for the crier client (docs/openapi.yaml, docs/callbacks.md).

export type Channel = "email" | "sms" | "whatsapp";
export type Urgency = "critical" | "high" | "normal" | "low";

export interface ClientInput {
  name?: string | null;
  email?: string | null;
  phone?: string | null;
  timezone?: string | null;
  locale?: string | null;
  consent?: { [channel: string]: boolean };
  [key: string]: unknown;
}

export interface AttachmentInput {
  filename: string;
  content_type: string;
  content_base64: string;
}

export interface CreateCommunicationRequest {
  plan_id: string;
  client_id: string;
  message_type: string;
  urgency?: Urgency;
  preferred_channel?: Channel | null;
  client?: ClientInput;
  context?: Record<string, unknown>;
  attachments?: AttachmentInput[];
  /** The workflow step, used for the automatic Idempotency-Key; never sent. */
  step?: string | number;
}

export interface Decision {
  primary_channel: Channel | null;
  fallback_channels: Channel[];
  send_at: string;
  priority: number;
  batch: unknown;
  skip_reason: string | null;
  rules_version: string;
  trace: Array<{ step: string; result: unknown }>;
}

export interface Accepted {
  communication_id: string;
  status: "queued" | "pending" | "skipped" | string;
  decision: Decision;
}

export interface CommunicationEvent {
  event_type: string;
  status: string;
  channel: Channel | null;
  attempt: number;
  at: string;
  detail: unknown;
}

export interface CommunicationSummary {
  communication_id: string;
  plan_id: string;
  client_id: string;
  message_type: string;
  urgency: Urgency;
  status: string;
  channel: Channel | null;
  attempts: number;
  send_at: string | null;
  sent_at: string | null;
  delivered_at: string | null;
  opened_at: string | null;
  clicked_at: string | null;
  error_message: string | null;
  error_category?: string | null;
  provider_code?: number | null;
  decision: Decision | null;
  /** "open" while every channel has failed and no one acted; then "retried" or "resolved". */
  review?: "open" | "retried" | "resolved" | null;
  review_note?: string | null;
  reviewed_at?: string | null;
  created_at: string;
}

export interface Communication extends CommunicationSummary {
  events: CommunicationEvent[];
}

export interface PlanCommunications {
  plan_id: string;
  communications: CommunicationSummary[];
}

export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  fetch?: typeof fetch;
  /** Abort a request after this many milliseconds. */
  timeoutMs?: number;
}

export interface CreateOptions {
  /** Overrides the automatic key. */
  idempotencyKey?: string;
  /** The workflow step; takes precedence over request.step. */
  step?: string | number;
}

export interface ListOptions {
  /** Filtered on the returned page: the API has no status filter. */
  status?: string | string[];
  /** 1 to 500; the server's default is 100. */
  limit?: number;
}

export interface CommunicationFilters {
  status?: string;
  review?: "open" | "retried" | "resolved";
  planId?: string;
  clientId?: string;
  messageType?: string;
  /** Created at or after, "2026-11-24T22:33:50Z". */
  since?: string;
  /** Created before, same shape. */
  until?: string;
  /** 1 to 500; the server's default is 100. */
  limit?: number;
}

export interface CrierClient {
  createCommunication(request: CreateCommunicationRequest, options?: CreateOptions): Promise<Accepted>;
  getCommunication(id: string): Promise<Communication>;
  listForPlan(planId: string, options?: ListOptions): Promise<PlanCommunications>;
  /** Operator or admin token. */
  listCommunications(filters?: CommunicationFilters): Promise<{ communications: CommunicationSummary[] }>;
  retryCommunication(id: string): Promise<Accepted>;
  resolveCommunication(id: string, note?: string): Promise<{ communication_id: string; review: "resolved" }>;
}

export declare class CrierError extends Error {
  constructor(status: number, code: string, message: string, body?: unknown);
  readonly name: "CrierError";
  /** The HTTP status. */
  status: number;
  /** error.code of the body, or "http_error" when the body is not crier's. */
  code: string;
  /** The parsed body, or the raw text when it is not JSON. */
  body: unknown;
}

export declare class CallbackVerificationError extends Error {
  constructor(message: string);
  readonly name: "CallbackVerificationError";
}

export declare const DEFAULT_TOLERANCE_SECONDS: number;

export declare function createClient(options: ClientOptions): CrierClient;

export declare function deriveIdempotencyKey(
  planId: string,
  messageType: string,
  step?: string | number | null,
): string;

export type HeaderBag =
  | Headers
  | Map<string, string>
  | { [name: string]: string | string[] | undefined };

export type Bytes = string | Buffer | Uint8Array | ArrayBuffer;

export interface VerifyOptions {
  /** Default 300. */
  toleranceSeconds?: number;
  /** Unix seconds, or a Date; default the current time. */
  now?: number | Date;
}

export declare function verifyCallback(
  headers: HeaderBag,
  rawBody: Bytes,
  secret: Bytes,
  options?: VerifyOptions,
): boolean;

export interface CallbackPayload {
  type: string;
  event_id: string;
  seq: number;
  plan_id: string | null;
  client_id: string | null;
  communication_id: string | null;
  message_type: string | null;
  channel: Channel | null;
  status: string;
  at: string;
  [key: string]: unknown;
}

export interface ParsedCallback {
  callbackId: string | undefined;
  event: string | undefined;
  timestamp: number;
  payload: CallbackPayload;
}

export declare function parseCallback(
  headers: HeaderBag,
  rawBody: Bytes,
  secret: Bytes,
  options?: VerifyOptions,
): ParsedCallback;
