// The /proc socket-table parsing behind the listener check: sample text as this kernel prints it.
import { describe, expect, it } from "vitest";
import { canonicalAddress, formatEndpoint, listenersFor, parseSocketLink, parseTcpListeners, type TcpListener } from "../../src/process/proc-net.js";

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 37979 1 000000004525b0e1 100 0 0 10 0
   1: 00000000:494C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 218269 1 000000000f936cb6 100 0 0 10 0
   2: 0100007F:4E21 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 41000 1 0000000000000000 20 4 30 10 -1
   3: 0200007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1002        0 41001 1 0000000000000000 100 0 0 10 0
garbage line
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:494B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 218268 1 0000000066458ecf 100 0 0 10 0
   1: 00000000000000000000000001000000:4949 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 218266 1 000000005da1821e 100 0 0 10 0
   2: 00000000000000000000000000000000:494A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 218267 1 00000000785bc484 100 0 0 10 0
`;

describe("parseTcpListeners", () => {
  it("reads address, port, uid and inode of each IPv4 LISTEN row, skipping the header, connections and garbage", () => {
    expect(parseTcpListeners(TCP, 4, true)).toEqual([
      { family: 4, address: "127.0.0.1", port: 20001, uid: 1001, inode: 37979 },
      { family: 4, address: "0.0.0.0", port: 18764, uid: 0, inode: 218269 },
      { family: 4, address: "127.0.0.2", port: 20001, uid: 1002, inode: 41001 },
    ]);
  });

  it("reads IPv6 rows (four host-order words) into canonical addresses", () => {
    expect(parseTcpListeners(TCP6, 6, true).map((e) => [e.address, e.port, e.uid, e.inode])).toEqual([
      ["::ffff:127.0.0.1", 18763, 0, 218268],
      ["::1", 18761, 0, 218266],
      ["::", 18762, 33, 218267],
    ]);
  });

  it("reads a big-endian machine's rows in network order", () => {
    const row = "   0: 7F000001:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     5        0 77 1 0 100 0 0 10 0";
    expect(parseTcpListeners(row, 4, false)).toEqual([{ family: 4, address: "127.0.0.1", port: 20001, uid: 5, inode: 77 }]);
    const row6 = "   0: 00000000000000000000000000000001:4949 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 78 1 0 100 0 0 10 0";
    expect(parseTcpListeners(row6, 6, false)[0]?.address).toBe("::1");
  });

  it("skips rows whose address does not fit the family", () => {
    expect(parseTcpListeners("   0: 0100007F:4E21 00000000:0000 0A 0:0 0:0 0 1 0 9 1", 6, true)).toEqual([]);
    expect(parseTcpListeners("   0: 0100Z07F:4E21 00000000:0000 0A 0:0 0:0 0 1 0 9 1", 4, true)).toEqual([]);
  });
});

describe("listenersFor", () => {
  const all: TcpListener[] = [...parseTcpListeners(TCP, 4, true), ...parseTcpListeners(TCP6, 6, true)];
  const at = (port: number, address: string, family: 4 | 6, inode: number): TcpListener => ({ family, address, port, uid: 0, inode });

  it("takes listeners on the address itself and on the IPv4 wildcard, not on other loopback addresses", () => {
    expect(listenersFor(all, ["127.0.0.1"], 20001).map((e) => e.inode)).toEqual([37979]);
    expect(listenersFor(all, ["127.0.0.1"], 18764).map((e) => e.inode)).toEqual([218269]);
  });

  it("counts a dual-stack [::] listener and the IPv4-mapped form for an IPv4 upstream", () => {
    const entries = [at(20002, "::", 6, 1), at(20002, "::ffff:127.0.0.1", 6, 2), at(20002, "::1", 6, 3), at(20002, "10.0.0.1", 4, 4)];
    expect(listenersFor(entries, ["127.0.0.1"], 20002).map((e) => e.inode)).toEqual([1, 2]);
  });

  it("for an IPv6 upstream takes the address and [::], never IPv4 sockets", () => {
    const entries = [at(20003, "::1", 6, 1), at(20003, "::", 6, 2), at(20003, "0.0.0.0", 4, 3), at(20003, "127.0.0.1", 4, 4)];
    expect(listenersFor(entries, ["::1"], 20003).map((e) => e.inode)).toEqual([1, 2]);
    expect(listenersFor(entries, ["0:0:0:0:0:0:0:1"], 20003).map((e) => e.inode)).toEqual([1, 2]);
  });

  it("finds nothing on a port nobody listens on, or for a name that is not an address", () => {
    expect(listenersFor(all, ["127.0.0.1"], 9)).toEqual([]);
    expect(listenersFor(all, ["localhost"], 20001)).toEqual([]);
  });
});

describe("socket links and addresses", () => {
  it("reads the inode of socket:[N] links only", () => {
    expect(parseSocketLink("socket:[218269]")).toBe(218269);
    expect(parseSocketLink("pipe:[1234]")).toBeNull();
    expect(parseSocketLink("/dev/null")).toBeNull();
    expect(parseSocketLink("socket:[12x]")).toBeNull();
  });

  it("prints addresses canonically and endpoints with brackets for IPv6", () => {
    expect(canonicalAddress("0000:0000:0000:0000:0000:ffff:7f00:0001")).toBe("::ffff:127.0.0.1");
    expect(canonicalAddress("not-an-ip")).toBeNull();
    expect(formatEndpoint("127.0.0.1", 20001)).toBe("127.0.0.1:20001");
    expect(formatEndpoint("::1", 20001)).toBe("[::1]:20001");
  });
});
