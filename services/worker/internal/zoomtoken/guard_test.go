package zoomtoken

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/usherhq/usher/shared/botstate"
)

func TestGuardClassifiesAddresses(t *testing.T) {
	t.Parallel()
	g := newGuard(nil)
	refused := []string{
		"127.0.0.1", "127.8.9.10", "::1", // loopback
		"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd00:ec2::254", "fec0::1", // private
		"169.254.169.254", "169.254.0.1", "fe80::1", // link-local, cloud metadata
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff01::1", // multicast
		"0.0.0.0", "::", "0.1.2.3", // unspecified, "this network"
		"255.255.255.255", "240.0.0.1", // broadcast, reserved
		"100.100.100.200", "100.64.0.1", // shared address space (Alibaba metadata)
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 of loopback, metadata
	}
	for _, a := range refused {
		if err := g.check(netip.MustParseAddr(a)); err == nil {
			t.Errorf("%s is allowed, want refused", a)
		}
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "64:ff9b::808:808", "::ffff:8.8.8.8"}
	for _, a := range allowed {
		if err := g.check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
}

func TestGuardAllowList(t *testing.T) {
	t.Parallel()
	allow, err := parseCIDRs([]string{"127.0.0.0/8", " ::1/128 ", "10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	g := newGuard(allow)
	for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1", "10.9.1.1"} {
		if err := g.check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s refused although allow-listed: %v", a, err)
		}
	}
	for _, a := range []string{"10.8.1.1", "169.254.169.254", "192.168.0.1"} {
		if err := g.check(netip.MustParseAddr(a)); err == nil {
			t.Errorf("%s allowed but not allow-listed", a)
		}
	}
}

// The address is checked when connecting, after resolution: whatever the URL
// says, a loopback connection is refused and the endpoint never called.
func TestFetchRefusesPrivateAddressesAtDialTime(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cases := []struct {
		name    string
		url     string
		resolve Resolver
	}{
		{"ip literal", srv.url("/"), nil},
		{"localhost", "https://localhost:" + port + "/", nil},
		// A public-looking name whose DNS answer is loopback (rebinding).
		{"public name resolving to loopback", "https://tokens.customer.example:" + port + "/", resolveTo("127.0.0.1")},
		{"public name resolving to metadata", "https://tokens.customer.example:" + port + "/", resolveTo("169.254.169.254")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.AllowCIDRs = nil // production default
			var opts []Option
			if tc.resolve != nil {
				opts = append(opts, WithResolver(tc.resolve))
			}
			h := newHarness(t, cfg, srv, opts...)
			_, err := fetch(t, h, request(tc.url))
			e := asError(t, err, ErrForbidden)
			if e.Reason != ReasonAddress || e.Transient() || e.SubCode() != botstate.SubZoomTokensURLForbidden {
				t.Errorf("reason %s transient %v sub_code %s", e.Reason, e.Transient(), e.SubCode())
			}
			if e.Attempts != 1 {
				t.Errorf("attempts %d: a refused address is not retried", e.Attempts)
			}
			if !strings.Contains(err.Error(), "is loopback") && !strings.Contains(err.Error(), "is link-local") {
				t.Errorf("error %q does not say which kind of address was refused", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := srv.calls.Load(); n != 0 {
			t.Errorf("the endpoint on a private address was called %d times", n)
		}
	})
}

func TestFetchAllowListedNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cfg := testConfig()
	cfg.AllowCIDRs = []string{"127.0.0.0/8"}
	// httptest's certificate is for example.com: TLS is verified against the name.
	h := newHarness(t, cfg, srv, WithResolver(resolveTo("127.0.0.1")))
	got, err := fetch(t, h, request("https://example.com:"+port+"/zoom-tokens"))
	if err != nil || got.ZAK.Reveal() != "z" {
		t.Fatalf("Fetch = %v, %v", got, err)
	}
}

func TestFetchUntrustedCertificateIsAConnectionError(t *testing.T) {
	t.Parallel()
	srv := newCallbackServer(t, true, reply(200, `{"zak_token":"z"}`))
	cfg := testConfig()
	cfg.Retries = 0
	// No WithRootCAs: the system roots do not know httptest's CA.
	c, err := New(cfg, discard(), nil, WithVersion("t"))
	if err == nil {
		t.Cleanup(c.Close)
		_, err = c.Fetch(t.Context(), request(srv.url("/")))
	}
	e := asError(t, err, ErrUnavailable)
	if e.Reason != ReasonConnection || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("reason %s, error %q", e.Reason, err)
	}
}
