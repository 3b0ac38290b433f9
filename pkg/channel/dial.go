package channel

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// ErrForbiddenAddress is wrapped by dials the guard refuses.
var ErrForbiddenAddress = fmt.Errorf("address not allowed")

// SafeTransport returns an http.Transport for outbound calls to URLs that
// workspaces configure (webhooks, provider base URLs). Its dialer refuses
// loopback, private, link-local, unspecified and other non-public addresses
// after DNS resolution — at connect time, so a DNS answer that changes
// between a check and the dial cannot get around it — unless the host (name
// or IP, as written in the URL) is in allow.
func SafeTransport(allow []string) *http.Transport {
	base := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // a proxy would dial on our behalf, unchecked
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if slices.Contains(allow, host) {
			return base.DialContext(ctx, network, addr)
		}
		d := *base
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if !PublicAddr(ap.Addr()) {
				return fmt.Errorf("dial %s (%s): %w: loopback, private, link-local and unspecified addresses are refused", host, ap.Addr(), ErrForbiddenAddress)
			}
			return nil
		}
		return d.DialContext(ctx, network, addr)
	}
	return t
}

// PublicAddr reports whether a is a routable public unicast address.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsLoopback(), a.IsPrivate(),
		a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsMulticast():
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// nonPublic are special-purpose ranges the netip predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64 may reach private IPv4
}

// MaxProviderResponse is the most of a provider's answer (SendGrid, Twilio)
// that is read: their answers are a few hundred bytes, and sendgrid-go reads
// a body whole, so an endpoint behind a workspace's base URL that answers
// without end would otherwise hold a send and its memory until the timeout.
const MaxProviderResponse = 1 << 20

// limitBodies wraps rt so that no response body yields more than n bytes:
// past them a read reports io.EOF.
func limitBodies(rt http.RoundTripper, n int64) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.Body != nil {
			resp.Body = limitedBody{io.LimitReader(resp.Body, n), resp.Body}
		}
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// limitedBody reads through a LimitReader and closes the real body.
type limitedBody struct {
	io.Reader
	io.Closer
}
