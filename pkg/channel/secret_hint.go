package channel

import (
	"context"
	"encoding/json"
	"errors"
)

// secretHintLength is how much of a stored secret people are shown, so
// that they can tell which key is in use ("set, ends in …") without the
// screen giving the secret away.
const secretHintLength = 4

// SecretHint returns the last characters of a channel's stored secret (the
// SendGrid API key, the Twilio auth token, the webhook signing secret), ""
// when the channel has none. The secret is opened only to cut its tail.
func (s *Store) SecretHint(ctx context.Context, workspaceID, channel string) (string, error) {
	var cfg json.RawMessage
	sealed, _, set, err := s.load(ctx, workspaceID, channel, &cfg)
	if errors.Is(err, ErrNotConfigured) || (err == nil && !set) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	secret, err := s.open(workspaceID, channel, sealed)
	if err != nil {
		return "", err
	}
	return secretTail(secret), nil
}

// secretTail is the end of a secret, or nothing for one so short that its
// tail would be most of it.
func secretTail(secret string) string {
	r := []rune(secret)
	if len(r) < 3*secretHintLength {
		return ""
	}
	return string(r[len(r)-secretHintLength:])
}
