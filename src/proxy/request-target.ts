// The request line and framing checks of RFC 9112 that Node's parser leaves to us: absolute-form
// targets become origin-form with Host from the URI (3.2.2), a Host field must be one valid
// uri-host[:port] (3.2), and chunked is the only transfer coding we forward (6.1).

/** An absolute-form target split into what goes upstream, or null when it cannot be forwarded. */
export interface OriginForm {
  /** path-abempty and query, "/" when empty. */
  path: string;
  /** The URI's authority: the Host to send. */
  host: string;
}

/**
 * `http://example.com:8080/x?y` → {path: "/x?y", host: "example.com:8080"}. Other schemes, a
 * userinfo part (`user@host`, deprecated by RFC 9110 4.2.4) and an invalid host give null.
 */
export function originForm(target: string): OriginForm | null {
  const schemeEnd = target.indexOf("://");
  if (schemeEnd !== 4 && schemeEnd !== 5) return null;
  const scheme = target.slice(0, schemeEnd).toLowerCase();
  if (scheme !== "http" && scheme !== "https") return null;
  const start = schemeEnd + 3;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break; // "/" or "?"
    end++;
  }
  const host = target.slice(start, end);
  if (!isValidHost(host)) return null;
  const rest = target.slice(end);
  return { host, path: rest === "" ? "/" : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest };
}

/** A Host value is uri-host [":" port] with a non-empty host (an http URI never has an empty one). */
export function isValidHost(value: string): boolean {
  const n = value.length;
  if (n === 0) return false;
  let i = 0;
  if (value.charCodeAt(0) === 0x5b) {
    // IP-literal: "[" IPv6 (or IPvFuture) "]"
    const close = value.indexOf("]");
    if (close < 2) return false;
    for (i = 1; i < close; i++) {
      const c = value.charCodeAt(i);
      if (c >= 128 || (HOST_CHAR[c] === 0 && c !== 0x3a)) return false;
    }
    i = close + 1;
  } else {
    for (; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c === 0x3a) break; // ":" starts the port
      if (c >= 128 || HOST_CHAR[c] === 0) return false;
    }
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (value.charCodeAt(i) !== 0x3a) return false;
  for (i++; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * What to answer a request with these Transfer-Encoding values: 0 to forward it (exactly
 * `chunked`), 501 for any other coding (we could not forward it faithfully), 400 for HTTP/1.0,
 * whose framing with Transfer-Encoding is faulty by definition (RFC 9112 6.1).
 */
export function transferCodingStatus(values: string, httpVersion: string): 0 | 400 | 501 {
  if (httpVersion === "1.0") return 400;
  if (values.length === 7 && values.toLowerCase() === "chunked") return 0;
  const codings = values
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "");
  return codings.length === 1 && codings[0] === "chunked" ? 0 : 501;
}

// reg-name characters (RFC 3986): unreserved, pct-encoded ("%") and sub-delims.
const HOST_CHAR = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=") HOST_CHAR[c.charCodeAt(0)] = 1;
