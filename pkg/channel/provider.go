package channel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// DefaultProviderURLAllow is the default of PARCOURS_PROVIDER_URL_ALLOW: the
// public API hosts of SendGrid (global and EU) and Twilio (US1, and the
// regional hosts api.<edge>.<region>.twilio.com).
const DefaultProviderURLAllow = "api.sendgrid.com,api.eu.sendgrid.com,api.twilio.com,*.twilio.com"

// DefaultProviderHosts returns DefaultProviderURLAllow as a list (a new
// slice each time: callers may append their fakes).
func DefaultProviderHosts() []string { return strings.Split(DefaultProviderURLAllow, ",") }

// ParseHostEntry checks one entry of a host allow-list: a host name, an IP
// address, host:port, or *.domain for every subdomain of domain. It
// returns the entry in lower case.
func ParseHostEntry(entry string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(entry))
	host := e
	if strings.HasPrefix(e, "[") || strings.Count(e, ":") == 1 {
		h, p, err := net.SplitHostPort(e)
		if err != nil || p == "" || strings.Trim(p, "0123456789") != "" {
			return "", fmt.Errorf("%q is not a host or host:port such as api.sendgrid.com or 127.0.0.1:8025", entry)
		}
		host = h
	}
	name := strings.TrimPrefix(host, "*.")
	if name == "" || strings.ContainsAny(name, "/?#@*[] ") {
		return "", fmt.Errorf("%q is not a host or host:port such as api.sendgrid.com or 127.0.0.1:8025", entry)
	}
	return e, nil
}

// hostAllowed reports whether u's host (and port: the scheme's default
// when absent) matches an entry of allow: an entry without a port matches
// every port; *.domain matches the subdomains of domain, not domain.
func hostAllowed(allow []string, u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	for _, e := range allow {
		e = strings.ToLower(strings.TrimSpace(e))
		eh, ep := e, ""
		if strings.HasPrefix(e, "[") || strings.Count(e, ":") == 1 {
			if h, p, err := net.SplitHostPort(e); err == nil {
				eh, ep = h, p
			}
		}
		if ep != "" && ep != port {
			continue
		}
		if d, ok := strings.CutPrefix(eh, "*."); ok {
			if strings.HasSuffix(host, "."+d) {
				return true
			}
			continue
		}
		if eh == host {
			return true
		}
	}
	return false
}

// plainHTTPAllowed reports whether a URL may use http rather than https:
// only to this machine (localhost, loopback addresses) or to a private
// address written as an IP. Both stay inside the operator's network, and
// the dial guard refuses them anyway unless PARCOURS_OUTBOUND_ALLOW lists
// the host; everywhere else plain http would carry a secret or personal
// data in clear across the internet.
func plainHTTPAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && !PublicAddr(a) && !a.IsUnspecified()
}

// CheckWebhookURL checks a URL that Parcours posts personal data to (a
// webhook channel, a journey's webhook node, a segment webhook): https
// without credentials, or plain http only to this machine or a private IP
// address (plainHTTPAllowed). Where it may point is checked again at dial
// time (SafeTransport).
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
		return errors.New("must be an https URL without credentials, such as https://crm.example.com/hooks/parcours")
	case u.Scheme == "http" && !plainHTTPAllowed(u.Hostname()):
		return errors.New("must be an https URL, such as https://crm.example.com/hooks/parcours: plain http is only for a receiver on this machine (localhost, 127.0.0.1) or a private IP address")
	}
	return nil
}

// normalURL is the URL a base URL names, for comparison: def when raw is
// empty, scheme and host in lower case, the scheme's default port and a
// trailing slash dropped.
func normalURL(raw, def string) string {
	if strings.TrimSpace(raw) == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		u.Host = strings.TrimSuffix(u.Host, ":"+p)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// AllowProviderHosts sets the hosts that provider base URLs (SendGrid's,
// Twilio's) may name: PARCOURS_PROVIDER_URL_ALLOW, whose entries
// ParseHostEntry reads. NewStore starts with DefaultProviderHosts. An empty
// base URL (the provider's default host, built in) is always allowed. It
// returns s.
func (s *Store) AllowProviderHosts(hosts ...string) *Store {
	s.providerHosts = append([]string(nil), hosts...)
	return s
}

// checkProviderURL checks a provider base URL a workspace sets: http(s)
// without credentials, https unless plainHTTPAllowed, and a host the
// operator allows. "" (the provider's default host) passes.
func (s *Store) checkProviderURL(raw string) error {
	if raw == "" {
		return nil
	}
	if err := checkURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if u.Scheme == "http" && !plainHTTPAllowed(u.Hostname()) {
		return errors.New("must be an https URL: plain http would send the provider's secret in clear (it is only for a fake on this machine)")
	}
	if !hostAllowed(s.providerHosts, u) {
		allowed := "none"
		if len(s.providerHosts) > 0 {
			allowed = strings.Join(s.providerHosts, ", ")
		}
		return fmt.Errorf("must name a provider host this server allows (%s), not %s: ask whoever runs Parcours to add it to PARCOURS_PROVIDER_URL_ALLOW", allowed, u.Host)
	}
	return nil
}

// providerURLRefused is the send-time check of a stored base URL: settings
// saved before the operator narrowed PARCOURS_PROVIDER_URL_ALLOW (or before
// the list existed) do not get the secret sent to a host no longer allowed.
func (s *Store) providerURLRefused(channel, raw string) error {
	if err := s.checkProviderURL(raw); err != nil {
		return permanent("the %s channel's base_url %s: %v; the stored secret is not sent there (PUT /v1/channels/%s with a base_url it allows)", channel, raw, err, channel)
	}
	return nil
}
