/**
 * Network address helpers. Pure.
 */

import net from "node:net";

/** True for `localhost`, 127.0.0.0/8 and ::1 (with or without brackets). */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const bare = host.replace(/^\[|\]$/g, "");
  if (net.isIPv4(bare)) return bare.startsWith("127.");
  if (net.isIPv6(bare)) return bare === "::1";
  return false;
}

/** The URL without user info, for logs and status (credentials never leave the gateway). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
