package channeltest

import (
	"context"
	"testing"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/template"
)

// SMS starts a fake Twilio and points the workspace's SMS channel at it,
// sending from TwilioFrom; callbackBase is the public URL status callbacks
// go to ("" keeps the ledger's PublicURL).
func (e *Env) SMS(t testing.TB, callbackBase string) *Twilio {
	t.Helper()
	fake := NewTwilio(t)
	if _, err := e.Ledger.Settings.PutSMS(context.Background(), e.WorkspaceID, channel.SMSInput{
		AccountSID: fake.AccountSID, AuthToken: fake.AuthToken, FromNumber: TwilioFrom, BaseURL: fake.URL, StatusCallbackBaseURL: callbackBase,
	}); err != nil {
		t.Fatal(err)
	}
	return fake
}

// PhoneProfile inserts a profile with a phone identity (phone may be "")
// and traits.
func (e *Env) PhoneProfile(t testing.TB, phone string, traits map[string]any) string {
	t.Helper()
	id := e.Profile(t, "", traits)
	if phone != "" {
		if _, err := e.Pool.Exec(context.Background(), `INSERT INTO identities (workspace_id, type, value, profile_id, origin_profile_id, source) VALUES ($1, 'phone', $2, $3, $3, 'test')`,
			e.WorkspaceID, phone, id); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// SMSTemplate saves an SMS template (its body is the text part).
func (e *Env) SMSTemplate(t testing.TB, slug, text string) template.Template {
	t.Helper()
	tpl, err := e.Ledger.Templates.Create(context.Background(), e.WorkspaceID, template.Template{Slug: slug, Name: slug, Channel: "sms", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}
