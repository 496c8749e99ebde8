import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "../errors.ts";
import { createDashboard, parseCookies, requestTarget, type DashboardOptions } from "./handler.ts";

/** @internal How the standalone server admits a browser. */
export type DashboardAuth =
  | { kind: "none" }
  /** `Authorization: Bearer <token>`, or `?token=<token>` once (then an HttpOnly cookie). */
  | { kind: "token"; token: string }
  | { kind: "basic"; user: string; password: string };

/** @internal Options of {@link startDashboardServer}. */
export interface DashboardServerOptions extends DashboardOptions {
  /** @default 3000 */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** @default { kind: "none" } */
  auth?: DashboardAuth;
  /** Host names accepted besides loopback ones when listening on loopback without auth (a local reverse proxy's). @default [] */
  allowedHosts?: readonly string[];
}

/** @internal A running standalone dashboard. */
export interface DashboardServer {
  readonly url: string;
  readonly server: Server;
  /** Serves from a new connection (after the old one was lost); open pages reconnect by themselves. */
  useConnection(nc: NatsConnection): void;
  close(): Promise<void>;
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();
const same = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** @internal Parses `user:password` (the password may contain colons). */
export function parseBasicAuth(s: string): { user: string; password: string } {
  const i = s.indexOf(":");
  if (i < 1 || i === s.length - 1) throw new ConfigError(`Expected basic auth as "user:password", got a value ${i < 0 ? "without a colon" : "with an empty part"}`);
  return { user: s.slice(0, i), password: s.slice(i + 1) };
}

/** @internal The host name of a `Host` header, without the port ("" when absent). */
export function hostnameOf(header: string | undefined): string {
  if (!header) return "";
  if (header.startsWith("[")) return header.slice(0, header.indexOf("]") + 1);
  const i = header.lastIndexOf(":");
  return (i >= 0 ? header.slice(0, i) : header).toLowerCase();
}

/** @internal Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function badRequest(res: ServerResponse): void {
  res.statusCode = 400;
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end("Bad request: the request target is not a valid URL path.\n");
}

/**
 * @internal Admits a request or answers it (401, or a redirect that trades `?token=` for a
 * cookie so the token leaves the address bar and the history). Returns whether to go on.
 */
export function authenticate(auth: DashboardAuth, cookieName: string, req: IncomingMessage, res: ServerResponse): boolean {
  if (auth.kind === "none") return true;
  const header = req.headers.authorization ?? "";
  if (auth.kind === "basic") {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (m) {
      const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i >= 0 && same(decoded.slice(0, i), auth.user) && same(decoded.slice(i + 1), auth.password)) return true;
    }
    res.statusCode = 401;
    res.setHeader("WWW-Authenticate", 'Basic realm="jetq dashboard", charset="UTF-8"');
    res.setHeader("Content-Type", "text/plain; charset=utf-8");
    res.end("Authentication required.\n");
    return false;
  }
  // The cookie holds a digest of the token, not the token itself.
  const cookieValue = createHash("sha256").update(`jetq-dashboard:${auth.token}`).digest("base64url");
  const bearer = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (bearer !== undefined && same(bearer, auth.token)) return true;
  const cookie = parseCookies(req.headers.cookie).get(cookieName);
  if (cookie !== undefined && same(cookie, cookieValue)) return true;
  // Parsed only now, after the credentials that need no URL: a target that is not one is a 400.
  const url = requestTarget(req.url);
  if (!url) {
    badRequest(res);
    return false;
  }
  const given = url.searchParams.get("token");
  if (given !== null && same(given, auth.token) && req.method === "GET") {
    url.searchParams.delete("token");
    res.statusCode = 303;
    res.setHeader("Set-Cookie", `${cookieName}=${cookieValue}; Path=/; HttpOnly; SameSite=Strict`);
    // One leading slash: "//host/..." in a Location header would send the browser to that host.
    res.setHeader("Location", `${url.pathname.replace(/^\/+/, "/")}${url.search}`);
    res.setHeader("Referrer-Policy", "no-referrer");
    res.end();
    return false;
  }
  res.statusCode = 401;
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end("Authentication required: open the dashboard with ?token=<token> once, or send Authorization: Bearer <token>.\n");
  return false;
}

/**
 * @internal Serves the dashboard on its own HTTP server (what `jetq dashboard` runs), on
 * loopback unless told otherwise.
 */
export async function startDashboardServer(nc: NatsConnection, options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const { port = 3000, host = "127.0.0.1", auth = { kind: "none" }, allowedHosts = [], ...dashboardOptions } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`Expected \`port\` to be an integer from 0 to 65535, got ${port}`);
  if (auth.kind === "token" && auth.token.length < 8) throw new ConfigError("Expected the dashboard token to be at least 8 characters long");
  let dashboard = createDashboard(nc, dashboardOptions);
  // Cookies ignore ports: one name per listening port keeps two dashboards on one host apart.
  let cookieName = "jetq_auth";
  // A site that rebinds its own hostname to 127.0.0.1 would be same-origin with a loopback
  // dashboard and could read its pages (CSRF token included). With no credentials to stop it,
  // only answer requests addressed to a loopback name (or one allowed explicitly).
  const checkHost = isLoopback(host) && auth.kind === "none";
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
  const server = createServer((req, res) => {
    // Runs before authentication, for anyone who can connect: nothing thrown here may reach the
    // event loop (an uncaught exception would end the process, a remote denial of service).
    try {
      const name = hostnameOf(req.headers.host);
      if (checkHost && !isLoopback(name) && !allowed.has(name)) {
        res.statusCode = 421;
        res.setHeader("Content-Type", "text/plain; charset=utf-8");
        res.end("This dashboard only answers requests addressed to localhost, 127.0.0.1 or [::1]; allow other names with --allow-host.\n");
        return;
      }
      if (authenticate(auth, cookieName, req, res)) dashboard(req, res);
    } catch {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.statusCode = 500;
      res.setHeader("Content-Type", "text/plain; charset=utf-8");
      res.end("Internal error.\n");
    }
  });
  // Live-update streams hold connections open: bound how long an idle one may linger.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  cookieName = `jetq_auth_${addr.port}`;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${addr.port}${options.basePath ?? ""}/`,
    server,
    useConnection: (next) => {
      const old = dashboard;
      dashboard = createDashboard(next, dashboardOptions);
      old.close();
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        dashboard.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
