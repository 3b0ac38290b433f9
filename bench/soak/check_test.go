package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

// TestCheckSendsCatchesWhatMustNotHappen: the rig's verdicts are only as
// good as its counting. Given a ledger and a provider log with a duplicate,
// a message the ledger calls sent that the provider never got, and a
// message to nobody's step, checkSends names each; an unknown delivery
// never taken is the documented window, not a violation; a clean log
// passes.
func TestCheckSendsCatchesWhatMustNotHappen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "chk", "chk")
	if err != nil {
		t.Fatal(err)
	}
	fake, err := StartFakeSendGrid("SG.chk")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	tn := &tenant{rig: &Rig{Pool: pool}, Slug: "chk", ID: ws.ID, Fake: fake}

	ids := map[string]string{} // "user/node" → delivery id
	status := map[string]string{
		"u1/welcome": "sent", "u1/tips": "sent",
		"u2/welcome": "unknown", "u2/tips": "sent",
		"u3/welcome": "sent", "u3/tips": "sent",
	}
	for _, u := range []string{"u1", "u2", "u3"} {
		profile := uuid.NewString()
		if _, err := pool.Exec(ctx, `INSERT INTO profiles (workspace_id, id, traits, state) VALUES ($1, $2, '{}', 'known')`, ws.ID, profile); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO identities (workspace_id, type, value, profile_id, origin_profile_id, source) VALUES ($1, 'user_id', $2, $3, $3, 'test')`, ws.ID, u, profile); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{nodeWelcome, nodeTips} {
			var id string
			if err := pool.QueryRow(ctx, `
				INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, node_id)
				VALUES ($1, $2, $3, 'email', $4, 'marketing', $5) RETURNING id::text`,
				ws.ID, "k/"+u+"/"+n, profile, status[u+"/"+n], n).Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids[u+"/"+n] = id
		}
	}
	send := func(step string) {
		u, n, _ := strings.Cut(step, "/")
		subject := "Welcome " + u
		if n == nodeTips {
			subject = "Tips for " + u
		}
		body, _ := json.Marshal(map[string]any{
			"personalizations": []any{map[string]any{"to": []any{map[string]string{"email": tn.email(u)}},
				"custom_args": map[string]string{"parcours_delivery_id": ids[step], "parcours_workspace_id": ws.ID}}},
			"from": map[string]string{"email": "hello@shop.example"}, "subject": subject,
			"content": []any{map[string]string{"type": "text/plain", "value": "hi"}},
		})
		req, _ := http.NewRequest(http.MethodPost, fake.URL+"/v3/mail/send", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer SG.chk")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("fake answered %v %v", resp, err)
		}
		resp.Body.Close()
	}
	users := []string{"u1", "u2", "u3"}

	// Clean but for the window: u2's welcome is unknown and never arrived.
	for _, s := range []string{"u1/welcome", "u1/tips", "u2/tips", "u3/welcome", "u3/tips"} {
		send(s)
	}
	s, err := tn.checkSends(ctx, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 || s.Expected != 6 || s.Sent != 5 || s.Unknown != 1 || s.Duplicated != 0 {
		t.Fatalf("clean log: %+v", s)
	}

	// Now the faults: u1's tips twice, u3's welcome gone from the log
	// (a fresh fake), and a message to a step nobody has.
	fake2, err := StartFakeSendGrid("SG.chk")
	if err != nil {
		t.Fatal(err)
	}
	defer fake2.Close()
	tn.Fake, fake = fake2, fake2
	for _, s := range []string{"u1/welcome", "u1/tips", "u1/tips", "u2/tips", "u3/tips"} {
		send(s)
	}
	ids["u9/welcome"] = uuid.NewString()
	send("u9/welcome")
	s, err = tn.checkSends(ctx, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.Problems, "\n")
	for _, want := range []string{
		"u1/tips: the ledger says sent, the provider took it 2 times",
		"u3/welcome: the ledger says sent, the provider took it 0 times",
		"messages nobody should have had: u9/welcome×1",
		"1 duplicate sends",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if s.Duplicated != 1 {
		t.Errorf("duplicated %d, want 1", s.Duplicated)
	}

	// A refused address: its deliveries must be failed and never taken.
	if _, err := pool.Exec(ctx, `UPDATE deliveries SET status = 'failed' WHERE workspace_id = $1 AND id = $2`, ws.ID, ids["u3/tips"]); err != nil {
		t.Fatal(err)
	}
	s, err = tn.checkSends(ctx, users, map[string]bool{"u3": true})
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(s.Problems, "\n")
	for _, want := range []string{"u3/welcome is sent, want failed", "u3/tips was taken 1 times although the provider refuses the address"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if s.Failed != 1 {
		t.Errorf("failed %d, want 1", s.Failed)
	}
}
