-- User management from the console's Settings: an admin deactivates a user
-- (reversible, the account and its history stay) and the users list shows
-- when each person last signed in.

-- +goose Up
ALTER TABLE users
    -- Set: the user cannot sign in; their sessions were ended when it was set.
    ADD COLUMN disabled_at   timestamptz,
    -- The last successful sign-in (NULL: never signed in).
    ADD COLUMN last_login_at timestamptz;

-- +goose Down
ALTER TABLE users
    DROP COLUMN last_login_at,
    DROP COLUMN disabled_at;
