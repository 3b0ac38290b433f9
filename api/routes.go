package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// route is one line of the route table: who may call what.
type route struct {
	method  string
	path    string
	scope   workspace.Scope // "" means public
	handler echo.HandlerFunc
	// selfAuth: the handler authenticates (the key may be in the body).
	selfAuth bool
}

const public workspace.Scope = ""

// routes is the API's one route table. Each handler's permission sits beside
// it; /openapi.json documents exactly these routes (a test checks it).
func (s *Server) routes() []route {
	return []route{
		// Operations
		{http.MethodGet, "/healthz", public, s.healthz, false},
		{http.MethodGet, "/readyz", public, s.readyz, false},
		{http.MethodGet, "/metrics", public, s.metricsHandler, false},
		{http.MethodGet, "/openapi.json", public, s.openapi, false},

		// Console: server-rendered pages for people. Public to API keys: the
		// page wrapper checks the session cookie, the CSRF token of every POST
		// and the user's role (the one beside each page).
		{http.MethodGet, "/", public, s.page(user.RoleViewer, s.dashboard), false},
		// Load the demo shop (parcours dev only; 404 elsewhere).
		{http.MethodPost, "/demo", public, s.page(user.RoleMarketer, s.loadDemoForm), false},
		{http.MethodGet, "/login", public, s.loginPage, false},
		{http.MethodGet, "/assets/*", public, s.assets, false},
		{http.MethodPost, "/login", public, s.login, false},
		{http.MethodPost, "/logout", public, s.page(user.RoleViewer, s.logout), false},
		{http.MethodGet, "/profiles", public, s.page(user.RoleViewer, s.profilesPage), false},
		{http.MethodGet, "/profiles/:id", public, s.page(user.RoleViewer, s.profilePage), false},
		// A person's data: marketers undo merges and download it (the right of
		// access); erasing, which cannot be undone, is for admins.
		{http.MethodGet, "/profiles/:id/export", public, s.page(user.RoleMarketer, s.exportProfilePage), false},
		{http.MethodGet, "/profiles/:id/merges/:mergeId/undo", public, s.page(user.RoleMarketer, s.undoMergePage), false},
		{http.MethodPost, "/profiles/:id/merges/:mergeId/undo", public, s.page(user.RoleMarketer, s.undoMergeForm), false},
		{http.MethodGet, "/profiles/:id/erase", public, s.page(user.RoleAdmin, s.erasePage), false},
		{http.MethodPost, "/profiles/:id/erase", public, s.page(user.RoleAdmin, s.eraseForm), false},
		{http.MethodGet, "/segments", public, s.page(user.RoleViewer, s.segmentsPage), false},
		{http.MethodGet, "/segments/new", public, s.page(user.RoleViewer, s.newSegmentPage), false},
		{http.MethodPost, "/segments/new", public, s.page(user.RoleMarketer, s.createSegmentForm), false},
		{http.MethodPost, "/segments/preview", public, s.page(user.RoleViewer, s.previewSegmentForm), false},
		{http.MethodPost, "/segments/check", public, s.page(user.RoleViewer, s.checkSegmentRule), false},
		{http.MethodGet, "/segments/:id", public, s.page(user.RoleViewer, s.segmentPage), false},
		{http.MethodPost, "/segments/:id", public, s.page(user.RoleMarketer, s.updateSegmentForm), false},
		{http.MethodGet, "/segments/:id/export", public, s.page(user.RoleMarketer, s.exportSegmentPage), false},
		{http.MethodGet, "/journeys", public, s.page(user.RoleViewer, s.journeysPage), false},
		{http.MethodGet, "/journeys/new", public, s.page(user.RoleViewer, s.newJourneyPage), false},
		{http.MethodPost, "/journeys/new", public, s.page(user.RoleMarketer, s.createJourneyForm), false},
		{http.MethodGet, "/journeys/:id", public, s.page(user.RoleViewer, s.journeyPage), false},
		{http.MethodPost, "/journeys/:id/publish", public, s.page(user.RoleMarketer, s.journeyAction("publish")), false},
		{http.MethodPost, "/journeys/:id/pause", public, s.page(user.RoleMarketer, s.journeyAction("pause")), false},
		{http.MethodPost, "/journeys/:id/resume", public, s.page(user.RoleMarketer, s.journeyAction("resume")), false},
		{http.MethodPost, "/journeys/scratch", public, s.page(user.RoleMarketer, s.createScratchJourney), false},
		{http.MethodGet, "/journeys/:id/edit", public, s.page(user.RoleMarketer, s.journeyEditPage), false},
		{http.MethodPost, "/journeys/:id/edit", public, s.page(user.RoleMarketer, s.journeyEditForm), false},
		{http.MethodGet, "/journeys/:id/publish", public, s.page(user.RoleMarketer, s.publishPreviewPage), false},
		{http.MethodGet, "/journeys/:id/runs", public, s.page(user.RoleViewer, s.journeyRunsPage), false},
		// Simulating writes and sends nothing: a viewer may try a journey.
		{http.MethodGet, "/journeys/:id/simulate", public, s.page(user.RoleViewer, s.journeySimulatePage), false},
		{http.MethodPost, "/journeys/:id/simulate", public, s.page(user.RoleViewer, s.journeySimulateForm), false},
		{http.MethodGet, "/templates", public, s.page(user.RoleViewer, s.templatesPage), false},
		{http.MethodGet, "/templates/new", public, s.page(user.RoleMarketer, s.newTemplatePage), false},
		{http.MethodPost, "/templates/new", public, s.page(user.RoleMarketer, s.createTemplateForm), false},
		{http.MethodGet, "/templates/:id", public, s.page(user.RoleViewer, s.templatePage), false},
		{http.MethodPost, "/templates/:id", public, s.page(user.RoleMarketer, s.updateTemplateForm), false},
		{http.MethodPost, "/templates/:id/preview", public, s.page(user.RoleViewer, s.previewTemplateForm), false},
		{http.MethodPost, "/templates/:id/test-send", public, s.page(user.RoleMarketer, s.testSendForm), false},
		// Reports: what the API's /v1/reports answer, for people; the CSV
		// downloads use the session, not an API key.
		{http.MethodGet, "/reports", public, s.page(user.RoleViewer, s.reportsPage), false},
		{http.MethodGet, "/reports/journeys.csv", public, s.page(user.RoleViewer, s.reportJourneysCSV), false},
		{http.MethodGet, "/reports/new-customers.csv", public, s.page(user.RoleViewer, s.reportNewCustomersCSV), false},
		{http.MethodGet, "/reports/touchpoints.csv", public, s.page(user.RoleViewer, s.reportTouchpointsCSV), false},
		// Settings: everyone may look (secrets are never shown); admins
		// change them and manage users; everyone changes their own password.
		{http.MethodGet, "/settings", public, s.page(user.RoleViewer, s.settingsPage), false},
		{http.MethodPost, "/settings", public, s.page(user.RoleAdmin, s.saveIdentityForm), false},
		{http.MethodPost, "/settings/check", public, s.page(user.RoleAdmin, s.systemCheckForm), false},
		{http.MethodGet, "/settings/channels", public, s.page(user.RoleViewer, s.channelsPage), false},
		{http.MethodPost, "/settings/channels/email", public, s.page(user.RoleAdmin, s.saveEmailChannelForm), false},
		{http.MethodPost, "/settings/channels/sms", public, s.page(user.RoleAdmin, s.saveSMSChannelForm), false},
		{http.MethodPost, "/settings/channels/webhook", public, s.page(user.RoleAdmin, s.saveWebhookChannelForm), false},
		{http.MethodGet, "/settings/delivery", public, s.page(user.RoleViewer, s.deliverySettingsPage), false},
		{http.MethodPost, "/settings/delivery", public, s.page(user.RoleAdmin, s.saveDeliveryForm), false},
		{http.MethodGet, "/settings/users", public, s.page(user.RoleViewer, s.usersPage), false},
		{http.MethodPost, "/settings/users", public, s.page(user.RoleAdmin, s.createUserForm), false},
		{http.MethodPost, "/settings/users/:id/role", public, s.page(user.RoleAdmin, s.userAction("role")), false},
		{http.MethodPost, "/settings/users/:id/deactivate", public, s.page(user.RoleAdmin, s.userAction("deactivated")), false},
		{http.MethodPost, "/settings/users/:id/reactivate", public, s.page(user.RoleAdmin, s.userAction("reactivated")), false},
		{http.MethodPost, "/settings/users/:id/remove", public, s.page(user.RoleAdmin, s.userAction("removed")), false},
		{http.MethodGet, "/settings/account", public, s.page(user.RoleViewer, s.accountPage), false},
		{http.MethodPost, "/settings/account/password", public, s.page(user.RoleViewer, s.changePasswordForm), false},
		// Data: sources and their write keys (admins create and revoke),
		// imports (marketers upload), the quarantine (marketers replay).
		{http.MethodGet, "/data", public, s.page(user.RoleViewer, s.sourcesPage), false},
		{http.MethodPost, "/data/keys", public, s.page(user.RoleAdmin, s.createKeyForm), false},
		{http.MethodGet, "/data/keys/:id", public, s.page(user.RoleViewer, s.keyPage), false},
		{http.MethodPost, "/data/keys/:id/revoke", public, s.page(user.RoleAdmin, s.revokeKeyForm), false},
		{http.MethodGet, "/data/imports", public, s.page(user.RoleViewer, s.importsPage), false},
		{http.MethodPost, consoleImportPath, public, s.limitUpload(s.page(user.RoleMarketer, s.createImportForm)), false},
		{http.MethodGet, "/data/imports/:id", public, s.page(user.RoleViewer, s.importPage), false},
		{http.MethodGet, "/data/quarantine", public, s.page(user.RoleViewer, s.quarantinePage), false},
		{http.MethodPost, "/data/quarantine/replay", public, s.page(user.RoleMarketer, s.replayQuarantineForm), false},
		{http.MethodPost, "/data/quarantine/rules/:id", public, s.page(user.RoleMarketer, s.toggleRuleForm), false},
		// The dev mailbox (parcours dev only; 404 elsewhere): the emails the
		// built-in fake SendGrid received.
		{http.MethodGet, "/mailbox", public, s.page(user.RoleViewer, s.mailboxPage), false},
		{http.MethodGet, "/mailbox/:id", public, s.page(user.RoleViewer, s.mailboxMessagePage), false},
		{http.MethodPost, "/mailbox/:id/events", public, s.page(user.RoleMarketer, s.mailboxSimulate), false},
		// The fake SendGrid itself: SendGrid's v3 mail/send wire format,
		// authenticated by its own key (pkg/devmail). Dev only; 404 elsewhere.
		{http.MethodPost, "/dev/sendgrid/v3/mail/send", public, s.devSendGrid, false},

		// Ingestion: the Segment HTTP API, as-is. Write keys.
		{http.MethodPost, "/v1/identify", workspace.ScopeWrite, s.ingestHandler(events.TypeIdentify), true},
		{http.MethodPost, "/v1/track", workspace.ScopeWrite, s.ingestHandler(events.TypeTrack), true},
		{http.MethodPost, "/v1/page", workspace.ScopeWrite, s.ingestHandler(events.TypePage), true},
		{http.MethodPost, "/v1/screen", workspace.ScopeWrite, s.ingestHandler(events.TypeScreen), true},
		{http.MethodPost, "/v1/group", workspace.ScopeWrite, s.ingestHandler(events.TypeGroup), true},
		{http.MethodPost, "/v1/alias", workspace.ScopeWrite, s.ingestHandler(events.TypeAlias), true},
		{http.MethodPost, "/v1/batch", workspace.ScopeWrite, s.ingestHandler(""), true},
		{http.MethodGet, "/v1/rejected", workspace.ScopeAdmin, s.listRejected, false},
		{http.MethodPost, "/v1/rejected/replay", workspace.ScopeAdmin, s.replayRejected, false},
		{http.MethodGet, "/v1/validation-rules", workspace.ScopeAdmin, s.listRules, false},
		{http.MethodPost, "/v1/validation-rules", workspace.ScopeAdmin, s.createRule, false},
		{http.MethodPatch, "/v1/validation-rules/:id", workspace.ScopeAdmin, s.updateRule, false},
		{http.MethodDelete, "/v1/validation-rules/:id", workspace.ScopeAdmin, s.deleteRule, false},

		// Profiles: the 360 view and the real-time lookup other systems call.
		{http.MethodGet, "/v1/profiles/lookup", workspace.ScopeAdmin, s.lookupProfile, false},
		{http.MethodGet, "/v1/profiles/:id", workspace.ScopeAdmin, s.getProfile, false},
		{http.MethodGet, "/v1/profiles/:id/events", workspace.ScopeAdmin, s.profileEvents, false},
		{http.MethodGet, "/v1/profiles/:id/journeys", workspace.ScopeAdmin, s.profileJourneys, false},
		{http.MethodPost, "/v1/profiles/:id/unmerge/:mergeId", workspace.ScopeAdmin, s.unmergeProfile, false},
		{http.MethodGet, "/v1/profiles/:id/export", workspace.ScopeAdmin, s.exportProfile, false},
		{http.MethodDelete, "/v1/profiles/:id", workspace.ScopeAdmin, s.eraseProfile, false},

		// Segments: expr rules over profiles, kept current in real time and by schedule.
		{http.MethodPost, "/v1/segments/preview", workspace.ScopeAdmin, s.previewSegment, false},
		{http.MethodGet, "/v1/segments", workspace.ScopeAdmin, s.listSegments, false},
		{http.MethodPost, "/v1/segments", workspace.ScopeAdmin, s.createSegment, false},
		{http.MethodGet, "/v1/segments/:id", workspace.ScopeAdmin, s.getSegment, false},
		{http.MethodPatch, "/v1/segments/:id", workspace.ScopeAdmin, s.updateSegment, false},
		{http.MethodDelete, "/v1/segments/:id", workspace.ScopeAdmin, s.deleteSegment, false},
		{http.MethodGet, "/v1/segments/:id/members", workspace.ScopeAdmin, s.segmentMembers, false},
		{http.MethodGet, "/v1/segments/:id/sizes", workspace.ScopeAdmin, s.segmentSizes, false},
		{http.MethodGet, "/v1/segments/:id/export", workspace.ScopeAdmin, s.exportSegment, false},
		// Outbound webhooks: entries and exits posted, signed, to other tools.
		{http.MethodPost, "/v1/segments/:id/webhooks", workspace.ScopeAdmin, s.createSegmentWebhook, false},
		{http.MethodGet, "/v1/segments/:id/webhooks", workspace.ScopeAdmin, s.listSegmentWebhooks, false},
		{http.MethodGet, "/v1/segments/:id/webhooks/:webhookId", workspace.ScopeAdmin, s.getSegmentWebhook, false},
		{http.MethodDelete, "/v1/segments/:id/webhooks/:webhookId", workspace.ScopeAdmin, s.deleteSegmentWebhook, false},
		{http.MethodPost, "/v1/segments/:id/webhooks/:webhookId/retry", workspace.ScopeAdmin, s.retrySegmentWebhook, false},

		// Journeys: definitions, versions, runs as Temporal workflows.
		{http.MethodGet, "/v1/journeys", workspace.ScopeAdmin, s.listJourneys, false},
		{http.MethodGet, "/v1/journey-scenarios", workspace.ScopeAdmin, s.listScenarios, false},
		{http.MethodPost, "/v1/journeys/scenarios/:name", workspace.ScopeAdmin, s.createFromScenario, false},
		{http.MethodPost, "/v1/journeys", workspace.ScopeAdmin, s.createJourney, false},
		{http.MethodGet, "/v1/journeys/:id", workspace.ScopeAdmin, s.getJourney, false},
		{http.MethodPut, "/v1/journeys/:id", workspace.ScopeAdmin, s.updateJourney, false},
		{http.MethodPost, "/v1/journeys/:id/publish", workspace.ScopeAdmin, s.publishJourney, false},
		{http.MethodPost, "/v1/journeys/:id/pause", workspace.ScopeAdmin, s.setJourneyStatus("paused"), false},
		{http.MethodPost, "/v1/journeys/:id/resume", workspace.ScopeAdmin, s.setJourneyStatus("live"), false},
		{http.MethodGet, "/v1/journeys/:id/runs", workspace.ScopeAdmin, s.journeyRuns, false},
		{http.MethodDelete, "/v1/journeys/:id/runs", workspace.ScopeAdmin, s.removeRuns, false},
		{http.MethodGet, "/v1/journeys/:id/stats", workspace.ScopeAdmin, s.journeyStats, false},
		{http.MethodPost, "/v1/journeys/:id/simulate", workspace.ScopeAdmin, s.simulateJourney, false},
		{http.MethodPost, "/v1/journeys/:id/entries", workspace.ScopeAdmin, s.enterByAPI, false},
		{http.MethodGet, "/v1/reports/journeys", workspace.ScopeAdmin, s.journeysReport, false},
		{http.MethodGet, "/v1/reports/journeys/:id", workspace.ScopeAdmin, s.journeyReport, false},
		{http.MethodGet, "/v1/reports/new-customers", workspace.ScopeAdmin, s.newCustomersReport, false},
		{http.MethodGet, "/v1/reports/touchpoints", workspace.ScopeAdmin, s.touchpointsReport, false},
		{http.MethodGet, "/v1/journeys/:id/publish-preview", workspace.ScopeAdmin, s.publishPreview, false},

		// Workspace and keys
		{http.MethodGet, "/v1/workspace", workspace.ScopeAdmin, s.getWorkspace, false},
		{http.MethodPatch, "/v1/workspace", workspace.ScopeAdmin, s.updateWorkspace, false},
		{http.MethodGet, "/v1/api-keys", workspace.ScopeAdmin, s.listKeys, false},
		{http.MethodPost, "/v1/api-keys", workspace.ScopeAdmin, s.createKey, false},
		{http.MethodDelete, "/v1/api-keys/:id", workspace.ScopeAdmin, s.revokeKey, false},

		// Diagnostics
		{http.MethodPost, "/v1/diagnostics/ping", workspace.ScopeAdmin, s.ping, false},

		// Channels and templates
		{http.MethodPut, "/v1/channels/email", workspace.ScopeAdmin, s.putEmailChannel, false},
		{http.MethodGet, "/v1/channels/email", workspace.ScopeAdmin, s.getEmailChannel, false},
		{http.MethodPut, "/v1/channels/webhook", workspace.ScopeAdmin, s.putWebhookChannel, false},
		{http.MethodGet, "/v1/channels/webhook", workspace.ScopeAdmin, s.getWebhookChannel, false},
		{http.MethodPut, "/v1/channels/sms", workspace.ScopeAdmin, s.putSMSChannel, false},
		{http.MethodGet, "/v1/channels/sms", workspace.ScopeAdmin, s.getSMSChannel, false},
		{http.MethodGet, "/v1/templates", workspace.ScopeAdmin, s.listTemplates, false},
		{http.MethodPost, "/v1/templates", workspace.ScopeAdmin, s.createTemplate, false},
		{http.MethodGet, "/v1/templates/:id", workspace.ScopeAdmin, s.getTemplate, false},
		{http.MethodPatch, "/v1/templates/:id", workspace.ScopeAdmin, s.updateTemplate, false},
		{http.MethodDelete, "/v1/templates/:id", workspace.ScopeAdmin, s.deleteTemplate, false},
		{http.MethodPost, "/v1/templates/:id/preview", workspace.ScopeAdmin, s.previewTemplate, false},
		{http.MethodPost, "/v1/templates/:id/test-send", workspace.ScopeAdmin, s.testSend, false},
		{http.MethodGet, "/v1/deliveries", workspace.ScopeAdmin, s.listDeliveries, false},
		{http.MethodPut, "/v1/profiles/:id/subscriptions/:channel", workspace.ScopeAdmin, s.putSubscription, false},
		// Consent: every subscription with its history; suppressed addresses;
		// the workspace's frequency caps and quiet hours.
		{http.MethodGet, "/v1/profiles/:id/subscriptions", workspace.ScopeAdmin, s.profileSubscriptions, false},
		{http.MethodGet, "/v1/suppressions", workspace.ScopeAdmin, s.listSuppressions, false},
		{http.MethodPost, "/v1/suppressions", workspace.ScopeAdmin, s.createSuppression, false},
		{http.MethodDelete, "/v1/suppressions/:id", workspace.ScopeAdmin, s.deleteSuppression, false},
		{http.MethodGet, "/v1/policies/delivery", workspace.ScopeAdmin, s.getDeliveryPolicy, false},
		{http.MethodPut, "/v1/policies/delivery", workspace.ScopeAdmin, s.putDeliveryPolicy, false},
		// The hosted preference page of a message's link: public, authenticated by its signed token.
		{http.MethodGet, "/v1/preferences", public, s.preferencesGet, false},
		{http.MethodPost, "/v1/preferences", public, s.preferencesPost, false},
		// Unsubscribe links in emails: public, authenticated by their signed token.
		{http.MethodGet, "/v1/unsubscribe", public, s.unsubscribePageGet, false},
		{http.MethodPost, "/v1/unsubscribe", public, s.unsubscribePost, false},
		// SendGrid's Event Webhook: public, authenticated by its ECDSA signature
		// with the workspace's verification key.
		{http.MethodPost, "/v1/webhooks/sendgrid/:workspace", public, s.sendgridEvents, false},
		// Twilio's status callbacks: public, authenticated by X-Twilio-Signature
		// with the workspace's auth token.
		{http.MethodPost, "/v1/webhooks/twilio/:workspace", public, s.twilioStatus, false},

		// Broadcasts: one template to a segment's members, now, at a time or on a cron, sent in batches.
		{http.MethodPost, "/v1/broadcasts", workspace.ScopeAdmin, s.createBroadcast, false},
		{http.MethodGet, "/v1/broadcasts", workspace.ScopeAdmin, s.listBroadcasts, false},
		{http.MethodGet, "/v1/broadcasts/:id", workspace.ScopeAdmin, s.getBroadcast, false},
		{http.MethodPost, "/v1/broadcasts/:id/cancel", workspace.ScopeAdmin, s.cancelBroadcast, false},

		// Bulk import: CSV / NDJSON exports of a CRM, a store, a call centre.
		{http.MethodPost, "/v1/imports", workspace.ScopeAdmin, s.createImport, false},
		{http.MethodGet, "/v1/imports", workspace.ScopeAdmin, s.listImports, false},
		{http.MethodGet, "/v1/imports/:id", workspace.ScopeAdmin, s.getImport, false},
	}
}
