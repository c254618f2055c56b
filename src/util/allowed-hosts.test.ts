import assert from "node:assert/strict";
import { test } from "node:test";
import { hostAllowed, hostName, hostPolicy, isLoopback, isWildcard, parseAllowedHosts } from "./allowed-hosts.ts";

test("Host header names: port, brackets, case and a trailing dot are not part of the name; malformed is null", () => {
  assert.equal(hostName("Example.COM:8080"), "example.com");
  assert.equal(hostName("[::1]:8000"), "::1");
  assert.equal(hostName("[::1]"), "::1");
  assert.equal(hostName("localhost."), "localhost");
  for (const bad of ["", "a b", "[::1", "::1", "user@host", "host/path", "a:b:c"]) assert.equal(hostName(bad), null, bad);
});

test("policies: loopback, a wildcard, another address, and names from --allowed-hosts", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost", "[::1]"]) assert.ok(isLoopback(h), h);
  for (const h of ["0.0.0.0", "10.0.0.1", "::", "example.com"]) assert.ok(!isLoopback(h), h);
  assert.ok(isWildcard("0.0.0.0") && isWildcard("::") && !isWildcard("127.0.0.1"));
  const local = hostPolicy("127.0.0.1");
  for (const h of ["localhost:8000", "127.0.0.1", "[::1]:1"]) assert.ok(hostAllowed(local, h), h);
  for (const h of ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "", undefined, null])
    assert.ok(!hostAllowed(local, h), String(h));
  const lan = hostPolicy("192.168.1.5");
  assert.ok(hostAllowed(lan, "192.168.1.5:8000") && !hostAllowed(lan, "localhost"));
  const flags = hostPolicy("127.0.0.1", parseAllowedHosts(["api.example.com, .corp.example", "10.0.0.7"]));
  for (const h of ["api.example.com", "corp.example", "a.b.corp.example:443", "10.0.0.7"]) assert.ok(hostAllowed(flags, h), h);
  assert.ok(!hostAllowed(flags, "evilcorp.example"));
  assert.ok(hostAllowed(hostPolicy("127.0.0.1", ["*"]), "anything.example"));
});
