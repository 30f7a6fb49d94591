// questlog's TypeScript client: typed commands and reads (types generated from questlog's
// `GET /v1/openapi.json` into `api.d.ts` by openapi-typescript), live subscriptions over
// Server-Sent Events opened with single-use tickets and resumed after the last event received,
// and account sessions whose access token is renewed (the refresh token rotating) when it expires.
// It runs in browsers and in Node 20 (fetch and streams only).

import type { components, operations, paths } from "./api.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];

/** A command's wire name (`POST /v1/commands/{name}`). */
export type CommandName = Extract<keyof paths, `/v1/commands/${string}`> extends `/v1/commands/${infer N}`
  ? N
  : never;
/** The body of the command `N`. */
export type CommandBody<N extends CommandName> = NonNullable<
  paths[`/v1/commands/${N}`]["post"]["requestBody"]
>["content"]["application/json"];
export type CommandOutcome = Schemas["CommandOutcome"];

/** A path `read` takes. */
export type ReadPath = {
  [P in keyof paths]: paths[P] extends { get: { responses: { 200: unknown } } } ? P : never;
}[keyof paths];
type GetOperation<P extends ReadPath> = paths[P]["get"];
/** What the read `P` answers. */
export type ReadAnswer<P extends ReadPath> = GetOperation<P> extends {
  responses: { 200: { content: { "application/json": infer A } } };
}
  ? A
  : never;
type Parameters<P extends ReadPath, In extends string> = GetOperation<P> extends {
  parameters: { [K in In]?: infer Q };
}
  ? Q
  : never;

/** An error questlog answered: problem+json with a stable `code`. */
export class QuestlogError extends Error {
  readonly status: number;
  readonly code: string;
  readonly problem: Schemas["Problem"] & Record<string, unknown>;
  readonly retryAfter: number | undefined;

  constructor(status: number, problem: Schemas["Problem"] & Record<string, unknown>, retryAfter?: number) {
    super(`${status} ${problem.code}: ${problem.detail}`);
    this.status = status;
    this.code = problem.code;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** What the client authenticates with. */
export interface Credentials {
  /** The Bearer token: an anonymous identity's token, or a session's access token. */
  token: string;
  /** A session's refresh token (accounts): renews `token` when it expires. */
  refreshToken?: string;
  identity?: string;
}

export interface ClientOptions {
  baseUrl: string;
  credentials?: Credentials;
  /** Told every time the credentials change (a rotation), to keep them. */
  onCredentials?: (credentials: Credentials) => void;
  fetch?: typeof fetch;
}

export interface ReadOptions<P extends ReadPath> {
  path?: Parameters<P, "path">;
  query?: Parameters<P, "query">;
}

export interface Read<A> {
  data: A;
  /** `Questlog-Position`: the log position the answer reflects. */
  position: number;
}

export interface LiveSnapshot {
  topic: string;
  position: number;
  data: unknown;
}
export interface LiveChange {
  topic: string;
  position: number;
  op: "upsert" | "delete";
  key: string | null;
  data: unknown;
}

export interface SubscribeOptions {
  onSnapshot?: (snapshot: LiveSnapshot) => void;
  onChange?: (change: LiveChange) => void;
  /** A connection ended or could not open; the subscription reconnects unless closed. */
  onError?: (error: unknown) => void;
  /** Resume after this event id (a position) on the first connection. */
  after?: number;
  /** Options the topics' kinds read, such as `leaderboard_limit`. */
  options?: Record<string, string | number>;
  /** Wait before reconnecting, in milliseconds (default: the server's `retry:`, else 2000). */
  retryMs?: number;
}

export interface Subscription {
  /** The id of the last event received: where a reconnection resumes. */
  readonly lastEventId: number | undefined;
  close(): void;
  /** Resolves once the subscription is closed. */
  readonly closed: Promise<void>;
}

export class Questlog {
  readonly baseUrl: string;
  credentials: Credentials | undefined;
  private readonly onCredentials: ((credentials: Credentials) => void) | undefined;
  private readonly fetchImpl: typeof fetch;
  private refreshing: Promise<void> | undefined;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/$/, "");
    this.credentials = options.credentials;
    this.onCredentials = options.onCredentials;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** A client with a new anonymous identity (`POST /v1/identity`). */
  static async anonymous(options: Omit<ClientOptions, "credentials">): Promise<Questlog> {
    const client = new Questlog(options);
    const answer = await client.send<Schemas["IdentityOut"]>("POST", "/v1/identity", undefined, false);
    client.setCredentials({ token: answer.data.token, identity: answer.data.identity });
    return client;
  }

  /** An account for this client's identity (an upgrade when it is anonymous) or a new one. */
  async register(body: Schemas["RegisterIn"]): Promise<Credentials> {
    const answer = await this.send<Schemas["AccountSession"]>("POST", "/v1/accounts/register", body, !!this.credentials);
    return this.session(answer.data);
  }

  /** A session for an account's email and password. */
  async login(body: Schemas["LoginIn"]): Promise<Credentials> {
    const answer = await this.send<Schemas["AccountSession"]>("POST", "/v1/accounts/login", body, false);
    return this.session(answer.data);
  }

  /** Sends the command `name`; resolves once its events are committed. */
  async command<N extends CommandName>(
    name: N,
    body: CommandBody<N>,
    options: { idempotencyKey?: string } = {},
  ): Promise<CommandOutcome> {
    const headers: Record<string, string> = {};
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    const answer = await this.send<CommandOutcome>("POST", `/v1/commands/${name}`, body, true, headers);
    return answer.data;
  }

  /** Reads `path` (`/v1/players/{id}` with `{ path: { id: "me" } }`); `query.min_position` reads your writes. */
  async read<P extends ReadPath>(path: P, options: ReadOptions<P> = {}): Promise<Read<ReadAnswer<P>>> {
    let url: string = path;
    for (const [name, value] of Object.entries((options.path ?? {}) as Record<string, unknown>)) {
      url = url.replace(`{${name}}`, encodeURIComponent(String(value)));
    }
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries((options.query ?? {}) as Record<string, unknown>)) {
      if (value !== undefined && value !== null) query.set(name, String(value));
    }
    const search = query.toString();
    return this.send<ReadAnswer<P>>("GET", search ? `${url}?${search}` : url, undefined, true);
  }

  /**
   * Follows `topics` live. Each connection opens with a fresh single-use ticket
   * (`POST /v1/subscribe/ticket`, so no token is in a URL) and resumes after the last event
   * received (`last_event_id`): the server replays what it holds since, or sends a snapshot.
   */
  subscribe(topics: string[], handlers: SubscribeOptions): Subscription {
    const controller = new AbortController();
    let lastEventId = handlers.after;
    let retryMs = handlers.retryMs;
    const loop = async () => {
      while (!controller.signal.aborted) {
        try {
          const ticket = await this.send<Schemas["Ticket"]>(
            "POST",
            "/v1/subscribe/ticket",
            { topics, ...(handlers.options ?? {}) },
            true,
          );
          const query = new URLSearchParams({ ticket: ticket.data.ticket });
          if (lastEventId !== undefined) query.set("last_event_id", String(lastEventId));
          const response = await this.fetchImpl(`${this.baseUrl}/v1/subscribe?${query}`, {
            headers: { accept: "text/event-stream" },
            signal: controller.signal,
          });
          if (!response.ok || !response.body) throw await problemOf(response);
          for await (const event of serverSentEvents(response.body)) {
            if (event.retry !== undefined && handlers.retryMs === undefined) retryMs = event.retry;
            if (event.id !== undefined && /^\d+$/.test(event.id)) lastEventId = Number(event.id);
            if (event.event === "snapshot") handlers.onSnapshot?.(JSON.parse(event.data));
            else if (event.event === "change") handlers.onChange?.(JSON.parse(event.data));
          }
          if (!controller.signal.aborted) handlers.onError?.(new Error("the event stream ended"));
        } catch (error) {
          if (controller.signal.aborted) break;
          handlers.onError?.(error);
          if (error instanceof QuestlogError && error.status === 401 && error.code !== "invalid_ticket") break;
        }
        await sleep(retryMs ?? 2000, controller.signal);
      }
    };
    const closed = loop();
    return {
      get lastEventId() {
        return lastEventId;
      },
      close: () => controller.abort(),
      closed,
    };
  }

  /** Renews the session's tokens now (the refresh token rotates); one renewal at a time. */
  async refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const refreshToken = this.credentials?.refreshToken;
        if (!refreshToken) throw new Error("no refresh token: this client holds no session");
        const answer = await this.send<Schemas["RefreshOut"]>(
          "POST",
          "/v1/identity/refresh",
          { refresh_token: refreshToken },
          false,
        );
        this.session(answer.data);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private session(answer: { identity: string; access_token: string; refresh_token: string }): Credentials {
    const credentials = { token: answer.access_token, refreshToken: answer.refresh_token, identity: answer.identity };
    this.setCredentials(credentials);
    return credentials;
  }

  private setCredentials(credentials: Credentials) {
    this.credentials = credentials;
    this.onCredentials?.(credentials);
  }

  private async send<A>(
    method: string,
    path: string,
    body: unknown,
    authenticated: boolean,
    headers: Record<string, string> = {},
    renewed = false,
  ): Promise<Read<A>> {
    const sent = this.credentials?.token;
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...headers,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(authenticated && sent ? { authorization: `Bearer ${sent}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.ok) {
      const text = await response.text();
      return {
        data: (text ? JSON.parse(text) : undefined) as A,
        position: Number(response.headers.get("questlog-position") ?? NaN),
      };
    }
    const problem = await problemOf(response);
    // An expired access token: renew it with the refresh token (unless another call did
    // meanwhile) and send again, once.
    if (problem.status === 401 && problem.code === "unauthorized" && authenticated && !renewed && this.credentials?.refreshToken) {
      if (this.credentials.token === sent) await this.refresh();
      return this.send<A>(method, path, body, authenticated, headers, true);
    }
    throw problem;
  }
}

async function problemOf(response: Response): Promise<QuestlogError> {
  const text = await response.text();
  let problem: Schemas["Problem"] & Record<string, unknown>;
  try {
    problem = JSON.parse(text);
  } catch {
    problem = { type: "about:blank", title: response.statusText, status: response.status, detail: text, code: "http_error" };
  }
  const retry = response.headers.get("retry-after");
  return new QuestlogError(response.status, problem, retry === null ? undefined : Number(retry));
}

interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
}

/** The events of a `text/event-stream` body (the WHATWG format: fields, comments, blank lines). */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event: ServerSentEvent = { event: "message", data: "" };
  let hasData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (hasData) yield event;
          event = { event: "message", data: "", id: event.id, retry: event.retry };
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event.event = value;
        else if (field === "data") {
          event.data = hasData ? `${event.data}\n${value}` : value;
          hasData = true;
        } else if (field === "id") event.id = value;
        else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
