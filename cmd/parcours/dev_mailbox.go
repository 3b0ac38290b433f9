package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/devmail"
)

// The dev mailbox: `parcours dev` serves a fake SendGrid on its API
// listener (/dev/sendgrid, pkg/devmail) and, when the workspace has no
// email channel of its own, points the channel there, so that journeys
// "send" on a laptop without a SendGrid account and the console's Mailbox
// page shows what went out.

// devMailHost is the host the worker's SendGrid client dials to reach the
// API listener at addr: loopback for a listener on every interface.
func devMailHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "localhost" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		return "127.0.0.1"
	}
	return host
}

// newDevMailbox creates the mailbox and lets outbound calls reach the API
// listener's host, which is also allowed as a provider host: the channel's
// base URL points there. (The guard against private addresses protects
// servers from URLs a workspace configures; on a laptop in dev, webhook
// receivers on that host are reachable too.)
func newDevMailbox(cfg *config.Config, logger *slog.Logger) (*devmail.Mailbox, error) {
	m, err := devmail.New(devmail.DefaultMax, logger)
	if err != nil {
		return nil, err
	}
	h := devMailHost(cfg.HTTPAddr)
	if !slices.Contains(cfg.OutboundAllow, h) {
		cfg.OutboundAllow = append(cfg.OutboundAllow, h)
	}
	// The email channel's base URL names the mailbox's host: a provider host
	// this laptop allows (PARCOURS_PROVIDER_URL_ALLOW).
	if !slices.Contains(cfg.ProviderURLAllow, h) {
		cfg.ProviderURLAllow = append(cfg.ProviderURLAllow, h)
	}
	return m, nil
}

// withDevMailbox serves the mailbox from the API.
func withDevMailbox(m *devmail.Mailbox) func(*api.Deps) {
	return func(d *api.Deps) { d.DevMailbox = m }
}

// configureDevMailbox points the workspace's email channel at the mailbox
// served by s, unless a real provider is configured. It answers the
// Mailbox page's URL, or "" when the channel sends for real.
func configureDevMailbox(ctx context.Context, m *devmail.Mailbox, settings *channel.Store, workspaceID string, s *apiServer, logger *slog.Logger) (string, error) {
	port := s.ln.Addr().(*net.TCPAddr).Port
	base := "http://" + net.JoinHostPort(devMailHost(s.ln.Addr().String()), strconv.Itoa(port))
	ours, err := m.Configure(ctx, settings, workspaceID, base)
	if err != nil {
		return "", fmt.Errorf("dev mailbox: %w", err)
	}
	if !ours {
		logger.Info("the email channel sends through its own provider; the dev mailbox stays empty")
		return "", nil
	}
	return s.URL() + "/mailbox", nil
}
