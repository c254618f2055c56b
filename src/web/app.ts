/**
 * The web app: the dashboard (`colloquy dashboard`) and the human evaluation (`colloquy human-eval serve`) as one
 * hono app; each command turns on its part. Pages are static files (public/); data comes from the JSON API.
 * Before any route: the Host check (421) and the body limit (413, enforced while the body streams in).
 */
import { Hono } from "hono";
import { type HostPolicy, hostPolicy } from "../util/allowed-hosts.ts";
import { type DashboardOptions, mountDashboard } from "./dashboard/routes.ts";
import { checkHost, errorBody, handleError, limitBodies, securityHeaders } from "./http.ts";
import { type HumanEvalOptions, mountHumanEval } from "./human-eval/routes.ts";
import { mountStatic } from "./static.ts";

export interface WebAppOptions {
  dashboard?: DashboardOptions;
  humanEval?: HumanEvalOptions;
  onBug?: (e: unknown) => void; // a 500: logged by the server
  hosts?: HostPolicy; // the Host names answered (default: those of a loopback address)
  maxBodyBytes?: number; // the largest request body on any route (default 16 KiB: the API's JSON is small)
}

export const MAX_BODY_BYTES = 16 * 1024;

export function createWebApp(o: WebAppOptions): Hono {
  const app = new Hono();
  app.use("*", securityHeaders);
  app.use("*", checkHost(o.hosts ?? hostPolicy("127.0.0.1")));
  app.use("*", limitBodies(o.maxBodyBytes ?? MAX_BODY_BYTES));
  app.onError((e, c) => handleError(e, c, o.onBug));
  app.notFound((c) => c.json(errorBody("E_NOT_FOUND", `no such page or API: ${c.req.method} ${c.req.path.slice(0, 200)}`), 404));

  const home = o.dashboard ? "/dashboard" : o.humanEval ? "/eval" : null;
  app.get("/", (c) => (home ? c.redirect(home) : c.notFound()));
  app.get("/api/features", (c) => c.json({ dashboard: Boolean(o.dashboard), human_eval: Boolean(o.humanEval) }));
  if (o.dashboard) {
    app.get("/dashboard", (c) => c.redirect("/dashboard.html"));
    mountDashboard(app, o.dashboard);
  }
  if (o.humanEval) {
    app.get("/eval", (c) => c.redirect("/eval.html"));
    mountHumanEval(app, o.humanEval);
  }
  mountStatic(app);
  return app;
}
