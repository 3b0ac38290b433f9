-- Console users and their sign-in sessions. API keys stay for machines;
-- people sign in to the console with an email and a password.

-- +goose Up
CREATE TABLE users (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    -- Trimmed and lower-cased by the application.
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name          text NOT NULL DEFAULT '',
    -- admin: everything; marketer: builds segments and journeys; viewer: reads.
    role          text NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    -- PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, email)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE sessions (
    -- SHA-256 of the random token held in the browser's cookie: a stolen
    -- database copy does not give sessions away.
    id           bytea PRIMARY KEY,
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL,
    -- Synchronizer token the console's forms must carry.
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    FOREIGN KEY (workspace_id, user_id) REFERENCES users (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
DROP TABLE users;
