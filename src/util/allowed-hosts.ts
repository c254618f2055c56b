/**
 * Which names a local server answers to (its `Host` header), against DNS rebinding: a web page on evil.example
 * whose name is made to resolve to 127.0.0.1 reaches a server on localhost with `Host: evil.example`, and only
 * that header tells the two apart. A server accepts the names of the address it is bound to, and those its user
 * names with a flag (`--allowed-hosts`); every other name is refused before any route runs.
 *
 *   bound to                      accepts
 *   loopback (127.x, ::1, localhost)  localhost, 127.0.0.1, ::1 and the address itself
 *   a wildcard (0.0.0.0, ::)      the above, this machine's host name, and every address of its interfaces
 *   any other address or name     that address or name
 *
 * Allowed names from the flag: exact names (`example.com`, `10.0.0.5`, `::1`), `.example.com` for that domain and
 * its subdomains, or `*` for any name (no protection: only behind a proxy that checks the name itself).
 * Only the name is compared, not the port (a proxy may forward another).
 */
import net from "node:net";
import os from "node:os";

export interface HostPolicy {
  any: boolean; // `*` was allowed
  names: ReadonlySet<string>; // lowercase; IPv6 addresses without brackets
  suffixes: readonly string[]; // ".example.com"
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

/** A host name as compared: lowercase, without brackets or one trailing dot. */
function canonical(name: string): string {
  let s = name.trim().toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.endsWith(".") && s.length > 1) s = s.slice(0, -1);
  return s;
}

/** Whether an address to listen on reaches only this machine. */
export function isLoopback(host: string): boolean {
  const h = canonical(host);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (net.isIPv4(h)) return h.startsWith("127.");
  if (net.isIPv6(h)) return h === "::1" || /^::ffff:127\./.test(h) || h === "0:0:0:0:0:0:0:1";
  return false;
}

/** Whether an address to listen on is every interface of the machine. */
export function isWildcard(host: string): boolean {
  const h = canonical(host);
  return h === "" || h === "0.0.0.0" || h === "::" || h === "0:0:0:0:0:0:0:0";
}

/** The names of this machine: its host name and the addresses of its network interfaces. */
function machineNames(): string[] {
  const out = [os.hostname()];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address.replace(/%.*$/, ""));
  return out;
}

/** The policy of a server bound to `bind`, with the names of `--allowed-hosts` added. */
export function hostPolicy(bind: string, allowed: readonly string[] = []): HostPolicy {
  const names = new Set<string>();
  const suffixes: string[] = [];
  let any = false;
  const b = canonical(bind);
  if (isLoopback(b) || isWildcard(b)) for (const n of LOOPBACK_NAMES) names.add(n);
  if (isWildcard(b)) for (const n of machineNames()) names.add(canonical(n));
  else names.add(b);
  for (const raw of allowed) {
    const n = canonical(raw);
    if (n === "") continue;
    if (n === "*") any = true;
    else if (n.startsWith(".")) suffixes.push(n);
    else names.add(n);
  }
  return { any, names, suffixes };
}

/** The name in a Host header ("Example.com:8000" → "example.com", "[::1]:80" → "::1"); null when malformed. */
export function hostName(header: string): string | null {
  const h = header.trim();
  const m = /^\[([0-9a-fA-F:.]+)\](?::\d{1,5})?$/.exec(h) ?? /^([^:[\]\s/@]+)(?::\d{1,5})?$/.exec(h);
  return m ? canonical(m[1]) : null;
}

/** Whether a request with this Host header may be answered. A missing or malformed header is refused. */
export function hostAllowed(policy: HostPolicy, header: string | null | undefined): boolean {
  if (policy.any) return true;
  const name = header ? hostName(header) : null;
  if (name === null) return false;
  return policy.names.has(name) || policy.suffixes.some((s) => name.endsWith(s) || name === s.slice(1));
}

/** `--allowed-hosts a,b` as names (commas and spaces separate them). */
export function parseAllowedHosts(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(/[,\s]+/)).filter((s) => s !== "");
}
