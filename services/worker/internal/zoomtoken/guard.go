package zoomtoken

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// errAddressForbidden is returned by the dialer when a connection would reach
// an address the guard refuses.
var errAddressForbidden = errors.New("address not allowed for callbacks")

// guard is the SSRF check. It runs in net.Dialer.Control, on the address the
// socket is about to connect to, after name resolution: a DNS answer that
// changes between a check and the connection (rebinding) cannot get past it.
type guard struct {
	allow   []netip.Prefix
	refused []refusedRange
	nat64   netip.Prefix
}

type refusedRange struct {
	prefix netip.Prefix
	class  string
}

func newGuard(allow []netip.Prefix) *guard {
	v4 := func(a, b, c, d byte, bits int, class string) refusedRange {
		return refusedRange{netip.PrefixFrom(netip.AddrFrom4([4]byte{a, b, c, d}), bits), class}
	}
	v6 := func(bits int, class string, hi ...byte) refusedRange {
		var a [16]byte
		copy(a[:], hi)
		return refusedRange{netip.PrefixFrom(netip.AddrFrom16(a), bits), class}
	}
	return &guard{
		allow: allow,
		// Ranges netip's predicates do not cover and that are never a
		// customer's public endpoint. Cloud metadata services live in
		// link-local (169.254.169.254, fd00:ec2::254) and in the shared
		// address space (100.100.100.200).
		refused: []refusedRange{
			v4(0, 0, 0, 0, 8, "unspecified"),
			v4(100, 64, 0, 0, 10, "shared address space"),
			v4(192, 0, 0, 0, 24, "reserved"),
			v4(198, 18, 0, 0, 15, "reserved"),
			v4(240, 0, 0, 0, 4, "reserved"),
			v6(48, "reserved", 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01),
			v6(10, "private", 0xfe, 0xc0),
		},
		// NAT64 reaches the IPv4 address in its last 4 bytes: judged by that.
		nat64: v6(96, "", 0x00, 0x64, 0xff, 0x9b).prefix,
	}
}

// check returns nil when addr may be connected to.
func (g *guard) check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, p := range g.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	if class := g.classify(addr); class != "" {
		return fmt.Errorf("%w: %s is %s", errAddressForbidden, addr, class)
	}
	return nil
}

func (g *guard) classify(addr netip.Addr) string {
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	}
	if addr.Is4() && addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "broadcast"
	}
	for _, r := range g.refused {
		if r.prefix.Contains(addr) {
			return r.class
		}
	}
	if g.nat64.Contains(addr) {
		b := addr.As16()
		if class := g.classify(netip.AddrFrom4([4]byte(b[12:]))); class != "" {
			return class + " (via NAT64)"
		}
	}
	return ""
}

// control is the net.Dialer.Control hook: address is the resolved ip:port.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address", errAddressForbidden)
	}
	return g.check(ap.Addr())
}

// Resolver looks a host name up. Tests use it to make a public-looking name
// resolve to a private address.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// dialer builds the transport's DialContext: every connection goes through
// the guard. With a Resolver, the names are resolved by it and each address
// is dialled in turn (the guard still checks each one).
func (g *guard) dialer(base *net.Dialer, resolve Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	base.Control = g.control
	if resolve == nil {
		return base.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("split host and port: %w", err)
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return base.DialContext(ctx, network, addr)
		}
		ips, err := resolve(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		var first error
		for _, ip := range ips {
			c, err := base.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
		}
		if first == nil {
			first = fmt.Errorf("resolve %s: no addresses", host)
		}
		return nil, first
	}
}
