-- Idle sign-out: a session unused for the idle timeout (30 minutes by
-- default, PARCOURS_SESSION_IDLE_TIMEOUT) ends before its expires_at. Each
-- request of the session moves last_seen_at forward (at most once a minute).

-- +goose Up
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
ALTER TABLE sessions DROP COLUMN last_seen_at;
